//! Kubernetes: sources of objects (dump folders), and the rules Kubernetes reads by (YAML as
//! sigs.k8s.io/yaml reads it, resource names as kubectl resolves them).

pub mod dir;
pub mod names;
pub mod yaml;

//! Kubernetes: sources of objects (dump folders), and the rules Kubernetes reads by (YAML as
//! sigs.k8s.io/yaml reads it, resource names as kubectl resolves them).

pub mod cluster;
pub mod dir;
pub mod discovery;
pub mod names;
pub mod scope;
pub mod yaml;

//! Kubernetes: sources of objects (a live cluster through its API, dump folders), and the rules
//! Kubernetes reads by (YAML as sigs.k8s.io/yaml reads it, resource names as kubectl resolves
//! them).
//!
//! - [`cluster`]: connecting, discovery requests, concurrent paginated lists with retries;
//! - [`discovery`]: reading aggregated and legacy discovery documents;
//! - [`scope`]: what an application scope keeps, and Secret redaction;
//! - [`dir`]: dump folders; [`yaml`]: YAML; [`names`]: kubectl-style names.

pub mod cluster;
pub mod dir;
pub mod discovery;
pub mod names;
pub mod restore;
pub mod scope;
pub mod yaml;

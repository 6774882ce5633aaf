//! kubesnap keeps the history of a Kubernetes cluster's resources in an encrypted,
//! deduplicating, content-addressed repository.
//!
//! Layers, each knowing only those below it:
//! - [`format`]: pure encode/decode of every stored object (no I/O);
//! - [`crypto`]: keys, the encryption envelope, blob ids;
//! - [`chunker`]: content-defined chunking of large parts;
//! - `backend`: a small storage trait over `object_store`, plus decorators (the cache);
//! - `cache`: the local SQLite cache, never the source of truth;
//! - `repo`: packer, index, trees, commit log, check;
//! - `k8s`: sources of objects (dump folders) and Kubernetes naming and YAML rules;
//! - `ops`: one file per operation, each with its `*Options`;
//! - the CLI (`main.rs`, `cli`) on top.
//!
//! `format`, `crypto` and `chunker` build without the `engine` feature (the fuzz crate uses
//! only them).
#![forbid(unsafe_code)]

pub mod chunker;
pub mod crypto;
pub mod format;

#[cfg(feature = "engine")]
pub mod backend;
#[cfg(feature = "engine")]
pub mod cache;
#[cfg(feature = "engine")]
pub mod error;
#[cfg(feature = "engine")]
pub mod k8s;
#[cfg(feature = "operator")]
pub mod operator;
#[cfg(feature = "engine")]
pub mod ops;
#[cfg(feature = "engine")]
pub mod repo;
#[cfg(feature = "engine")]
pub mod timeutil;

#[cfg(feature = "engine")]
pub use error::{Error, Result};

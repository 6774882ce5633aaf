//! Operations: one file per operation, each with its `*Options`. The CLI and (later) the
//! operator call these same functions.

pub mod apply;
pub mod check;
pub mod copy;
pub mod diff;
pub mod fielddiff;
pub mod forget;
pub mod init;
pub mod key;
pub mod live;
pub mod livediff;
pub mod log;
pub mod ls;
pub mod prune;
pub mod restore;
pub mod retention;
pub mod rewrite;
pub mod select;
pub mod snapshot;
pub mod snapshots;
pub mod stats;

use serde_json::Value;

use crate::format::tree::{PartRef, ResourceEntry};
use crate::repo::Repository;
use crate::{Error, Result};

/// Reports progress of long work. The CLI shows a bar on a terminal; tests pass [`NoProgress`].
pub trait Progress: Sync {
    fn start(&self, what: &str, total: u64);
    fn advance(&self, n: u64);
    fn finish(&self);
    fn warn(&self, message: &str);
}

/// Progress that goes nowhere (warnings still go to stderr).
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
    fn warn(&self, message: &str) {
        eprintln!("warning: {message}");
    }
}

/// The bytes of one part (its blobs back to back).
pub fn read_part(repo: &Repository, part: &PartRef) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(part.size as usize);
    for id in &part.blobs {
        out.extend_from_slice(&repo.read_blob(id)?);
    }
    if out.len() as u64 != part.size {
        return Err(Error::corrupt(
            "resource part",
            part.blobs.first().map(|b| b.to_hex()).unwrap_or_default(),
            "its size differs from the tree's",
        ));
    }
    Ok(out)
}

/// A stored resource as JSON: its desired state, with the server-owned fields merged back in
/// when `server_fields`.
pub fn read_resource(repo: &Repository, entry: &ResourceEntry, server_fields: bool) -> Result<Value> {
    let bytes = read_part(repo, &entry.desired)?;
    let mut v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt("blob", entry.desired.blobs[0].to_hex(), format!("not JSON: {e}")))?;
    if server_fields {
        if let Some(s) = &entry.server {
            let sb = read_part(repo, s)?;
            let sv: Value = serde_json::from_slice(&sb)
                .map_err(|e| Error::corrupt("blob", s.blobs[0].to_hex(), format!("not JSON: {e}")))?;
            crate::format::resource::merge(&mut v, sv);
        }
    }
    Ok(v)
}

/// Only the server-owned fields of a stored resource (Null when it has none).
pub fn read_server_part(repo: &Repository, entry: &ResourceEntry) -> Result<Value> {
    match &entry.server {
        None => Ok(Value::Null),
        Some(s) => {
            let sb = read_part(repo, s)?;
            serde_json::from_slice(&sb)
                .map_err(|e| Error::corrupt("blob", s.blobs[0].to_hex(), format!("not JSON: {e}")))
        }
    }
}

//! `kubesnap ls`: the resources of a snapshot.

use serde::Serialize;

use super::select::{self, Filter};
use crate::format::resource::ResourceRef;
use crate::repo::Repository;
use crate::Result;

#[derive(Clone, Debug, Serialize)]
pub struct LsEntry {
    #[serde(flatten)]
    pub resource: ResourceRef,
    /// Uncompressed size of the desired state.
    pub size: u64,
    /// Has a controller owner.
    pub owned: bool,
}

pub fn ls(repo: &Repository, snapshot: &crate::format::SnapshotId, filter: &Filter) -> Result<Vec<LsEntry>> {
    let m = repo.load_manifest(snapshot)?;
    let mut out = Vec::new();
    select::walk_filtered(repo, &m.roots, filter, &mut |r, e| {
        out.push(LsEntry { resource: r, size: e.desired.size, owned: e.owned });
        Ok(())
    })?;
    out.sort_by(|a, b| a.resource.cmp(&b.resource));
    Ok(out)
}

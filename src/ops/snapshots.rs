//! `kubesnap snapshots list` and `snapshots show`.

use serde::Serialize;

use crate::format::log::SnapshotSummary;
use crate::format::snapshot::SnapshotManifest;
use crate::format::SnapshotId;
use crate::repo::Repository;
use crate::Result;

#[derive(Clone, Debug, Default)]
pub struct ListOptions {
    pub cluster: Option<String>,
    /// Only snapshots with every one of these tags.
    pub tags: Vec<String>,
}

/// Snapshots, oldest first (by time, ties by commit order).
pub fn list(repo: &Repository, opts: &ListOptions) -> Vec<SnapshotSummary> {
    repo.snapshots()
        .into_iter()
        .filter(|s| opts.cluster.as_ref().is_none_or(|c| &s.cluster == c))
        .filter(|s| opts.tags.iter().all(|t| s.tags.contains(t)))
        .collect()
}

#[derive(Clone, Debug, Serialize)]
pub struct ShowReport {
    pub id: SnapshotId,
    #[serde(flatten)]
    pub manifest: SnapshotManifest,
}

pub fn show(repo: &Repository, id: &SnapshotId) -> Result<ShowReport> {
    Ok(ShowReport { id: *id, manifest: repo.load_manifest(id)? })
}

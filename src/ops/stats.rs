//! `kubesnap stats [SNAP]`: sizes, deduplication and compression.

use std::collections::HashSet;

use serde::Serialize;

use crate::format::{BlobId, SnapshotId};
use crate::repo::{tree, Repository};
use crate::Result;

#[derive(Clone, Debug, Default, Serialize)]
pub struct StatsReport {
    pub snapshots: u64,
    /// Resources, summed over the snapshots counted.
    pub objects: u64,
    /// What the snapshots hold, uncompressed and before deduplication (desired + server parts).
    pub logical_bytes: u64,
    /// Unique blobs they reference, and those blobs' uncompressed size (after deduplication).
    pub blobs: u64,
    pub deduplicated_bytes: u64,
    /// Bytes in the store (packs, index files, manifests, log); for one snapshot: the stored
    /// size of the frames holding its blobs.
    pub stored_bytes: u64,
    /// `deduplicated_bytes / stored_bytes`.
    pub compression_ratio: f64,
    /// `logical_bytes / stored_bytes`.
    pub total_ratio: f64,
}

pub fn stats(repo: &Repository, snapshot: Option<&SnapshotId>) -> Result<StatsReport> {
    let mut rep = StatsReport::default();
    let ids: Vec<SnapshotId> = match snapshot {
        Some(id) => vec![*id],
        None => repo.snapshots().into_iter().map(|s| s.id).collect(),
    };
    let mut blobs: HashSet<BlobId> = HashSet::new();
    let mut frames = HashSet::new();
    for id in &ids {
        let m = repo.load_manifest(id)?;
        rep.snapshots += 1;
        rep.objects += m.objects;
        rep.logical_bytes += m.desired_bytes + m.server_bytes;
        tree::walk_snapshot(repo, &m.roots, &mut |_, e| {
            blobs.extend(e.desired.blobs.iter().copied());
            if let Some(s) = &e.server {
                blobs.extend(s.blobs.iter().copied());
            }
            Ok(())
        })?;
    }
    rep.blobs = blobs.len() as u64;
    for id in &blobs {
        if let Some(loc) = repo.locate(id)? {
            rep.deduplicated_bytes += u64::from(loc.raw_length);
            if snapshot.is_some() && frames.insert((loc.frame.pack, loc.frame.offset)) {
                rep.stored_bytes += u64::from(loc.frame.sealed_length);
            }
        }
    }
    if snapshot.is_none() {
        for prefix in ["data/", "tree/", "index/", "snapshots/", "log/", "checkpoints/", "keys/", "config"] {
            rep.stored_bytes += repo.backend().list(prefix, None)?.iter().map(|o| o.size).sum::<u64>();
        }
    }
    if rep.stored_bytes > 0 {
        rep.compression_ratio = rep.deduplicated_bytes as f64 / rep.stored_bytes as f64;
        rep.total_ratio = rep.logical_bytes as f64 / rep.stored_bytes as f64;
    }
    Ok(rep)
}

//! `kubesnap copy --to LOCATION [SNAP...]`: copies snapshots into another repository.
//!
//! Blob ids are keyed by each repository's master key, so nothing can be copied as stored bytes:
//! every resource is read (and authenticated) here, then stored in the destination as a new
//! snapshot would store it, deduplicated against what the destination holds. The copy keeps
//! the snapshot's time, cluster, tags, source, recorded types, skipped types and partial flag,
//! and records `source_info.copied_from`; a snapshot already copied (by that record) is skipped,
//! so copy can run again after a failure or on a schedule.
//!
//! This is also how a leaked master key is retired: copy everything into a new repository
//! (a new master key), then retire the old one.

use serde::Serialize;

use super::snapshot::{SnapshotMeta, SnapshotWriter};
use super::Progress;
use crate::format::log::SnapshotSummary;
use crate::format::SnapshotId;
use crate::repo::{tree, Repository};
use crate::{timeutil, Error, Result};

#[derive(Clone, Debug, Serialize)]
pub struct Copied {
    pub from: SnapshotId,
    /// None when it was copied before.
    pub to: Option<SnapshotId>,
    pub objects: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CopyReport {
    pub copied: Vec<Copied>,
    pub skipped: usize,
}

/// Copies `snapshots` (oldest first) from `src` into `dst`.
pub fn copy(
    src: &Repository,
    dst: &mut Repository,
    snapshots: &[SnapshotSummary],
    progress: &dyn Progress,
) -> Result<CopyReport> {
    if src.id() == dst.id() {
        return Err(Error::Usage("the destination is the same repository".into()));
    }
    let mut report = CopyReport { copied: Vec::new(), skipped: 0 };
    let mut ordered = snapshots.to_vec();
    ordered.sort_by_key(|s| timeutil::parse_stored(&s.time));
    for s in ordered {
        dst.refresh()?;
        // Already there?
        let mut done = false;
        for d in dst.snapshots().iter().filter(|d| d.cluster == s.cluster && d.time == s.time) {
            let m = dst.load_manifest(&d.id)?;
            if m.source_info.get("copied_from").and_then(|v| v.as_str()) == Some(&s.id.to_hex()) {
                done = true;
                report.copied.push(Copied { from: s.id, to: None, objects: m.objects });
                break;
            }
        }
        if done {
            report.skipped += 1;
            continue;
        }
        let m = src.load_manifest(&s.id)?;
        let mut writer = SnapshotWriter::new();
        if m.source.kind == "cluster" {
            // Source tags are keyed: the destination computes its own from uid and version.
            writer = writer.with_source_tags(if m.secrets_redacted() { "cluster redact-secrets" } else { "cluster" });
        }
        progress.start(&format!("copying {}", s.id.short()), m.objects);
        let mut failure = None;
        tree::walk_snapshot(src, &m.roots, &mut |r, e| {
            let v = super::read_resource(src, &e, true)?;
            if let Err(reason) = writer.add_value(dst, 0, v)? {
                failure = Some(format!("{}: {reason}", r.display()));
            }
            progress.advance(1);
            Ok(())
        })?;
        progress.finish();
        if let Some(f) = failure {
            return Err(Error::corrupt("snapshot", s.id.to_hex(), format!("a resource cannot be copied: {f}")));
        }
        let mut info = m.source_info.clone();
        info.insert("copied_from".into(), serde_json::json!(s.id));
        let time = timeutil::parse_stored(&m.time)
            .ok_or_else(|| Error::corrupt("snapshot", s.id.to_hex(), "its time cannot be read"))?;
        let meta = SnapshotMeta {
            cluster: m.cluster.clone(),
            tags: m.tags.clone(),
            time,
            source: m.source.clone(),
            skipped: m.skipped.clone(),
            partial: m.partial,
            discovery: m.types.iter().filter(|t| t.source == "discovery").cloned().collect(),
            source_info: info,
        };
        let r = writer.commit(dst, meta, &|_| s.id.short())?;
        report.copied.push(Copied { from: s.id, to: Some(r.id), objects: r.objects });
    }
    Ok(report)
}

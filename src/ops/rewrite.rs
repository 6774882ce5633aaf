//! `kubesnap rewrite --exclude RESOURCE... [SNAP...]`: rewrites snapshots without some
//! resources (a Secret that leaked into history), so that a following `prune` removes their data.
//!
//! Each rewritten snapshot gets a new tree (unchanged subtrees are shared, not copied) and a new
//! manifest that keeps the original's time, cluster, tags and source, and records what was
//! excluded and which snapshot it replaces (`source_info.rewritten_from`, `.excluded`). One
//! commit-log entry adds the new snapshots and removes the old ones, so a reader sees either
//! all the old ones or all the new ones.

use std::collections::HashSet;

use serde::Serialize;

use super::select;
use crate::format::log::SnapshotSummary;
use crate::format::resource::ResourceRef;
use crate::format::tree::ResourceEntry;
use crate::format::SnapshotId;
use crate::repo::tree::{self, TreeWriter};
use crate::repo::{index, LogChange, Repository};
use crate::{Error, Result};

#[derive(Clone, Debug, Default)]
pub struct RewriteOptions {
    /// `TYPE/NAME` (one object; in `namespace` when given, else in any namespace) or `TYPE`
    /// (every object of the type).
    pub exclude: Vec<String>,
    pub namespace: Option<String>,
    /// Snapshots to rewrite; empty: every snapshot (of `cluster`, when given).
    pub snapshots: Vec<String>,
    pub cluster: Option<String>,
    pub dry_run: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Rewritten {
    pub old: SnapshotId,
    /// None in a dry run.
    pub new: Option<SnapshotId>,
    pub removed: Vec<ResourceRef>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RewriteReport {
    pub dry_run: bool,
    pub rewritten: Vec<Rewritten>,
    /// Snapshots that held none of the resources.
    pub unchanged: usize,
}

enum Spec {
    Object { group: String, kind: String, name: String },
    Kind { group: String, kind: String },
}

pub fn rewrite(repo: &mut Repository, opts: &RewriteOptions) -> Result<RewriteReport> {
    if opts.exclude.is_empty() {
        return Err(Error::Usage(
            "name what to exclude: --exclude secret/leaked (or a type: --exclude secrets)".into(),
        ));
    }
    repo.refresh()?;
    let base = repo.state().seq;
    let chosen: Vec<SnapshotSummary> = if opts.snapshots.is_empty() {
        select::of_cluster(repo, opts.cluster.as_deref())
    } else {
        opts.snapshots.iter().map(|s| select::snapshot(repo, s, opts.cluster.as_deref())).collect::<Result<_>>()?
    };
    let mut report = RewriteReport { dry_run: opts.dry_run, rewritten: Vec::new(), unchanged: 0 };
    let mut resolved_any = vec![false; opts.exclude.len()];
    let mut tw = TreeWriter::new(repo);
    let mut new_manifests = Vec::new();
    for s in &chosen {
        let m = repo.load_manifest(&s.id)?;
        let mut specs = Vec::new();
        for (i, e) in opts.exclude.iter().enumerate() {
            let spec = if e.contains('/') {
                select::resolve_resource(repo, &m, e).map(|(k, name)| Spec::Object {
                    group: k.group,
                    kind: k.kind,
                    name,
                })
            } else {
                select::resolve_kind(repo, &m, e).map(|k| Spec::Kind { group: k.group, kind: k.kind })
            };
            // A type this snapshot does not know holds nothing to exclude.
            if let Ok(spec) = spec {
                resolved_any[i] = true;
                specs.push(spec);
            }
        }
        let excluded = |r: &ResourceRef| {
            opts.namespace.as_ref().is_none_or(|n| &r.namespace == n)
                && specs.iter().any(|s| match s {
                    Spec::Object { group, kind, name } => &r.group == group && &r.kind == kind && &r.name == name,
                    Spec::Kind { group, kind } => &r.group == group && &r.kind == kind,
                })
        };
        let mut kept: Vec<(ResourceRef, ResourceEntry)> = Vec::new();
        let mut removed = Vec::new();
        tree::walk_snapshot(repo, &m.roots, &mut |r, e| {
            if excluded(&r) {
                removed.push(r);
            } else {
                kept.push((r, e));
            }
            Ok(())
        })?;
        if removed.is_empty() {
            report.unchanged += 1;
            continue;
        }
        if opts.dry_run {
            report.rewritten.push(Rewritten { old: s.id, new: None, removed });
            continue;
        }
        kept.sort_by(|a, b| tree::tree_order(&a.0, &b.0));
        let mut nm = m.clone();
        nm.objects = kept.len() as u64;
        nm.desired_bytes = kept.iter().map(|(_, e)| e.desired.size).sum();
        nm.server_bytes = kept.iter().map(|(_, e)| e.server.as_ref().map_or(0, |p| p.size)).sum();
        nm.roots = tw.write_snapshot(kept)?;
        nm.source_info.insert("rewritten_from".into(), serde_json::json!(s.id));
        nm.source_info.insert("excluded".into(), serde_json::json!(opts.exclude));
        new_manifests.push((s.clone(), nm, removed));
    }
    if let Some(i) = resolved_any.iter().position(|r| !r) {
        if !chosen.is_empty() {
            return Err(Error::not_found("resource type", opts.exclude[i].clone()));
        }
    }
    if opts.dry_run || new_manifests.is_empty() {
        return Ok(report);
    }
    tw.packer.flush(repo)?;
    let written = std::mem::take(&mut tw.packer.written);
    drop(tw);
    let mut change = LogChange::default();
    let own_packs: HashSet<crate::format::PackId> = written.frames().iter().map(|f| f.pack).collect();
    if !written.is_empty() {
        let (id, _) = index::write_index(repo, written)?;
        change.add_index.push(id);
        repo.index().add_pending(id);
    }
    for (old, nm, removed) in new_manifests {
        let (id, _) = repo.write_manifest(&nm)?;
        change.add_snapshots.push(SnapshotSummary {
            id,
            time: old.time.clone(),
            cluster: old.cluster.clone(),
            tags: old.tags.clone(),
            objects: nm.objects,
            partial: old.partial,
        });
        change.remove_snapshots.push(old.id);
        report.rewritten.push(Rewritten { old: old.id, new: Some(id), removed });
    }
    let own_index = change.add_index.first().copied();
    let new_ids: Vec<SnapshotId> = change.add_snapshots.iter().map(|s| s.id).collect();
    // The same check as a snapshot's: a concurrent prune must not have removed what the new
    // trees reuse, nor the files this rewrite uploaded.
    repo.commit_checked(change, &mut |repo: &Repository| {
        for r in repo.state().removals_after(base) {
            let own = new_ids.iter().any(|i| r.snapshots.contains(i))
                || own_index.is_some_and(|i| r.index.contains(&i))
                || r.packs.iter().any(|p| own_packs.contains(p));
            if own || !r.packs.is_empty() {
                return Err(Error::Commit(
                    "a prune ran while rewriting; nothing was committed: run rewrite again".into(),
                ));
            }
        }
        Ok(())
    })?;
    Ok(report)
}

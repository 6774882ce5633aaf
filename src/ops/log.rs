//! `kubesnap log RESOURCE`: the history of one resource across snapshots, newest first.

use serde::Serialize;

use super::fielddiff::FieldChange;
use super::select::{self, KindRef};
use crate::format::log::SnapshotSummary;
use crate::format::resource::ResourceRef;
use crate::format::tree::ResourceEntry;
use crate::format::SnapshotId;
use crate::repo::Repository;
use crate::{Error, Result};

#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    /// `TYPE/NAME`.
    pub resource: String,
    pub namespace: Option<String>,
    pub cluster: Option<String>,
    pub patch: bool,
    pub server_fields: bool,
    pub show_secrets: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct LogRecord {
    pub snapshot: SnapshotId,
    pub time: String,
    /// "added", "modified" or "removed".
    pub change: &'static str,
    /// With `-p`: the field-level changes against the previous version (empty when added or
    /// removed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldChange>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LogReport {
    pub resource: ResourceRef,
    pub records: Vec<LogRecord>,
}

/// The resource's entry in one snapshot, if present (one namespace: fixed by the first match).
fn entry_in(
    repo: &Repository,
    s: &SnapshotSummary,
    kind: &KindRef,
    name: &str,
    ns: Option<&str>,
) -> Result<Option<(ResourceRef, ResourceEntry)>> {
    let m = repo.load_manifest(&s.id)?;
    match select::find_resource(repo, &m.roots, kind, name, ns) {
        Ok(x) => Ok(Some(x)),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn log(repo: &Repository, opts: &LogOptions) -> Result<LogReport> {
    let cluster = select::choose_cluster(repo, opts.cluster.as_deref())?;
    let snaps = select::of_cluster(repo, cluster.as_deref());
    let Some(newest) = snaps.last() else {
        return Err(Error::not_found("snapshot", "any (the repository has no snapshots)"));
    };
    // Resolve the name against the newest snapshot's types, then older ones if needed.
    let mut kind = None;
    let mut last_err = None;
    for s in snaps.iter().rev().take(3).chain(std::iter::once(newest)) {
        let m = repo.load_manifest(&s.id)?;
        match select::resolve_resource(repo, &m, &opts.resource) {
            Ok(k) => {
                kind = Some(k);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    let Some((kind, name)) = kind else {
        return Err(last_err.unwrap_or_else(|| Error::not_found("resource", opts.resource.clone())));
    };

    // Fix the namespace: the one given, else the one the resource lives in (must be unique).
    let mut namespace = opts.namespace.clone();
    if namespace.is_none() {
        for s in snaps.iter().rev() {
            if let Some((r, _)) = entry_in(repo, s, &kind, &name, None)? {
                namespace = Some(r.namespace);
                break;
            }
        }
    }
    let ns = namespace.clone().filter(|n| !n.is_empty());
    let resource = ResourceRef {
        group: kind.group.clone(),
        kind: kind.kind.clone(),
        namespace: namespace.clone().unwrap_or_default(),
        name: name.clone(),
    };

    let mut records = Vec::new();
    let mut prev: Option<ResourceEntry> = None;
    for s in &snaps {
        let cur = entry_in(repo, s, &kind, &name, ns.as_deref())?.map(|(_, e)| e);
        let same: fn(&ResourceEntry, &ResourceEntry) -> bool =
            if opts.server_fields { crate::repo::tree::same_all } else { crate::repo::tree::same_desired };
        let change = match (&prev, &cur) {
            (None, Some(_)) => Some("added"),
            (Some(_), None) => Some("removed"),
            (Some(a), Some(b)) if !same(a, b) => Some("modified"),
            _ => None,
        };
        if let Some(change) = change {
            let fields = if opts.patch {
                match (&prev, &cur) {
                    (Some(a), Some(b)) => {
                        Some(super::diff::field_changes(repo, &resource, a, b, opts.server_fields, opts.show_secrets)?)
                    }
                    _ => Some(Vec::new()),
                }
            } else {
                None
            };
            records.push(LogRecord { snapshot: s.id, time: s.time.clone(), change, fields });
        }
        prev = cur;
    }
    if records.is_empty() {
        return Err(Error::not_found("resource", format!("{} in any snapshot", resource.display())));
    }
    records.reverse();
    Ok(LogReport { resource, records })
}

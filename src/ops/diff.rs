//! `kubesnap diff A B`: what changed between two snapshots. Equal subtrees are skipped by id,
//! so consecutive days of a large cluster compare in milliseconds.

use serde::Serialize;

use super::fielddiff::{self, FieldChange};
use super::select::Filter;
use crate::format::resource::ResourceRef;
use crate::format::tree::ResourceEntry;
use crate::format::SnapshotId;
use crate::repo::{tree, Repository};
use crate::Result;

#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    pub filter: Filter,
    /// Count changes of server-owned fields too.
    pub server_fields: bool,
    /// Field-level changes of each modified resource.
    pub patch: bool,
    pub show_secrets: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ResourceChanges {
    #[serde(flatten)]
    pub resource: ResourceRef,
    pub fields: Vec<FieldChange>,
}

#[derive(Clone, Debug, Serialize, Default)]
pub struct DiffReport {
    pub added: Vec<ResourceRef>,
    pub removed: Vec<ResourceRef>,
    pub modified: Vec<ResourceRef>,
    /// With `-p`: the field-level changes of each modified resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<ResourceChanges>>,
}

/// Field-level changes between two stored versions of one resource.
pub fn field_changes(
    repo: &Repository,
    r: &ResourceRef,
    old: &ResourceEntry,
    new: &ResourceEntry,
    server_fields: bool,
    show_secrets: bool,
) -> Result<Vec<FieldChange>> {
    let a = super::read_resource(repo, old, server_fields)?;
    let b = super::read_resource(repo, new, server_fields)?;
    let mut c = fielddiff::diff_values(&a, &b);
    if fielddiff::is_secret(&r.group, &r.kind) && !show_secrets {
        fielddiff::redact_secret_changes(&mut c);
    }
    Ok(c)
}

pub fn diff(repo: &Repository, a: &SnapshotId, b: &SnapshotId, opts: &DiffOptions) -> Result<DiffReport> {
    let ma = repo.load_manifest(a)?;
    let mb = repo.load_manifest(b)?;
    let same: &dyn Fn(&ResourceEntry, &ResourceEntry) -> bool =
        if opts.server_fields { &tree::same_all } else { &tree::same_desired };
    let changes = tree::diff_snapshots(repo, &ma.roots, &mb.roots, same)?;
    let mut report = DiffReport::default();
    let mut patches = Vec::new();
    for c in changes {
        if !opts.filter.matches(&c.resource) {
            continue;
        }
        match (&c.old, &c.new) {
            (None, Some(_)) => report.added.push(c.resource),
            (Some(_), None) => report.removed.push(c.resource),
            (Some(old), Some(new)) => {
                if opts.patch {
                    let fields = field_changes(repo, &c.resource, old, new, opts.server_fields, opts.show_secrets)?;
                    patches.push(ResourceChanges { resource: c.resource.clone(), fields });
                }
                report.modified.push(c.resource);
            }
            (None, None) => {}
        }
    }
    report.added.sort();
    report.removed.sort();
    report.modified.sort();
    if opts.patch {
        patches.sort_by(|x, y| x.resource.cmp(&y.resource));
        report.changes = Some(patches);
    }
    Ok(report)
}

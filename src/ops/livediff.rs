//! `kubesnap diff SNAP --live`: a snapshot's desired state against the live cluster's, in the
//! JSON shape of a snapshot-to-snapshot diff (`added`: in the cluster only; `removed`: in the
//! snapshot only; `modified`).
//!
//! Both sides are compared as restorable state ([`crate::k8s::restore::comparable`]): what the
//! cluster allocates on its own (cluster IPs, node ports, owner uids...) and what restore never
//! applies are left out, so a restore followed by `diff --live` shows nothing. Objects a
//! controller owns are compared only with `include_owned`, as restore applies them only then.
//!
//! A live object whose desired state hashes to the stored blob ids is unchanged and nothing of
//! it is read from the repository; only changed objects are read and compared field by field.
//! The cluster is listed as the snapshot's scope listed it: the types it took (for a snapshot
//! of a cluster, also those it had no object of, so that a first NetworkPolicy shows as added;
//! for a dump folder, the types it holds), in its namespaces, with its selector, leaving out its
//! excluded namespaces. Against a snapshot taken with `--redact-secrets`, the cluster's Secrets
//! are compared without their values too.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use super::diff::{DiffReport, ResourceChanges};
use super::fielddiff::{self, FieldChange};
use super::select::{self, Filter};
use super::Progress;
use crate::format::resource::{identity_of, is_controller_owned, split, ResourceRef};
use crate::format::tree::ResourceEntry;
use crate::format::SnapshotId;
use crate::k8s::cluster::{
    group_version_path, query_escape, Cluster, ConnectOptions, ListEvent, ListOptions, RetryPolicy, ServedVersions,
    TypeOutcome,
};
use crate::k8s::discovery::ApiType;
use crate::k8s::restore::{comparable, never_restored};
use crate::repo::Repository;
use crate::{Error, Result};

#[derive(Clone, Debug, Default)]
pub struct LiveDiffOptions {
    pub connect: ConnectOptions,
    /// `TYPE/NAME` resources; empty: every resource passing the filter.
    pub resources: Vec<String>,
    pub filter: Filter,
    /// Field-level changes of each modified resource.
    pub patch: bool,
    pub show_secrets: bool,
    /// Also objects a controller owns.
    pub include_owned: bool,
    pub list: ListOptions,
    pub retry: Option<RetryPolicy>,
}

struct Comparer<'a> {
    repo: &'a Repository,
    opts: &'a LiveDiffOptions,
    cluster: &'a Cluster,
    /// What the cluster serves at versions other than the preferred ones.
    served: RefCell<ServedVersions>,
}

/// A modified resource, the list it came from, and its field changes (with `patch`).
type Modified = (ResourceRef, usize, Vec<FieldChange>);

impl Comparer<'_> {
    /// Compares one stored resource with its live object: `None` when they are the same.
    fn compare(&self, r: &ResourceRef, entry: &ResourceEntry, live: Value) -> Result<Option<Vec<FieldChange>>> {
        let live = split(live).desired;
        if super::snapshot::desired_blob_ids(self.repo, &live).as_slice() == entry.desired.blobs.as_slice() {
            return Ok(None);
        }
        let stored = super::read_resource(self.repo, entry, false)?;
        let stored_av = stored.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let live = match live.get("apiVersion").and_then(Value::as_str) {
            Some(av) if av != stored_av => self.at_version(r, stored_av, live)?,
            _ => live,
        };
        let (stored, live) = (comparable(&stored), comparable(&live));
        if stored == live {
            return Ok(None);
        }
        let mut fields = Vec::new();
        if self.opts.patch {
            fields = fielddiff::diff_values(&stored, &live);
            if fielddiff::is_secret(&r.group, &r.kind) && !self.opts.show_secrets {
                fielddiff::redact_secret_changes(&mut fields);
            }
        }
        Ok(Some(fields))
    }

    /// The live object at the stored object's API version: read again at that version where the
    /// cluster serves it (the server converts), else as it is, relabelled (what restore does
    /// when it converts; a field that does not convert still shows as a difference).
    fn at_version(&self, r: &ResourceRef, stored_av: &str, mut live: Value) -> Result<Value> {
        let (group, version) = stored_av.rsplit_once('/').unwrap_or(("", stored_av));
        if let Some(plural) = self.served.borrow_mut().resource(self.cluster, group, version, &r.kind)? {
            let ns = if r.namespace.is_empty() { String::new() } else { format!("/namespaces/{}", r.namespace) };
            let path = format!("{}{ns}/{plural}/{}", group_version_path(group, version), query_escape(&r.name));
            if let Some(v) = self.cluster.get_object(&path)? {
                return Ok(split(v).desired);
            }
        }
        live["apiVersion"] = Value::String(stored_av.to_string());
        Ok(live)
    }

    /// Whether a stored resource takes part (restore would apply it).
    fn stored_counts(&self, entry: &ResourceEntry) -> Result<bool> {
        if entry.owned && !self.opts.include_owned {
            return Ok(false);
        }
        Ok(never_restored(&super::read_resource(self.repo, entry, false)?).is_none())
    }

    fn live_counts(&self, live: &Value) -> bool {
        never_restored(live).is_none() && (self.opts.include_owned || !is_controller_owned(live))
    }

    fn report(&self, added: Vec<ResourceRef>, removed: Vec<ResourceRef>, modified: Vec<Modified>) -> DiffReport {
        let mut report = DiffReport { added, removed, ..DiffReport::default() };
        let mut changes = Vec::new();
        for (r, _, fields) in modified {
            report.modified.push(r.clone());
            changes.push(ResourceChanges { resource: r, fields });
        }
        report.added.sort();
        report.removed.sort();
        report.modified.sort();
        if self.opts.patch {
            changes.sort_by(|x, y| x.resource.cmp(&y.resource));
            report.changes = Some(changes);
        }
        report
    }
}

/// Compares a snapshot with the live cluster.
pub fn diff_live(
    repo: &Repository,
    snapshot: &SnapshotId,
    opts: &LiveDiffOptions,
    progress: &dyn Progress,
) -> Result<DiffReport> {
    let manifest = repo.load_manifest(snapshot)?;
    let mut cluster = Cluster::connect(&opts.connect)?;
    if let Some(r) = &opts.retry {
        cluster.retry = r.clone();
    }
    let discovery = cluster.discover()?;
    let api_type = |group: &str, kind: &str| {
        discovery.types.iter().find(|t| t.resource.group == group && t.resource.kind == kind && t.listable())
    };
    let cmp = Comparer { repo, opts, cluster: &cluster, served: RefCell::new(ServedVersions::default()) };

    let scope = manifest.source_info.get("scope");
    // A snapshot without Secret values is compared with the cluster's Secrets without theirs.
    let redacted = manifest.secrets_redacted();
    let seen_as_stored = |mut v: Value| {
        if redacted {
            crate::k8s::scope::redact_secret(&mut v);
        }
        v
    };
    let scope_kind = scope.and_then(|s| s.get("kind")).and_then(Value::as_str).unwrap_or("cluster");
    if !opts.resources.is_empty() || scope_kind == "application" {
        // Each stored object against its own live object; an application's snapshot holds no
        // list of "everything", so nothing can be called added.
        let chosen = super::restore::choose(repo, &manifest, &opts.resources, &opts.filter)?;
        progress.start("resources", chosen.len() as u64);
        let (mut removed, mut modified) = (Vec::new(), Vec::new());
        for (r, entry) in chosen {
            if !cmp.stored_counts(&entry)? && opts.resources.is_empty() {
                continue;
            }
            let live = match api_type(&r.group, &r.kind) {
                Some(t) => cluster
                    .get_object(&t.object_path((!r.namespace.is_empty()).then_some(r.namespace.as_str()), &r.name))?,
                None => None,
            };
            match live.map(seen_as_stored) {
                Some(l) => {
                    if let Some(fields) = cmp.compare(&r, &entry, l)? {
                        modified.push((r, 0, fields));
                    }
                }
                None => removed.push(r),
            }
            progress.advance(1);
        }
        progress.finish();
        return Ok(cmp.report(Vec::new(), removed, modified));
    }

    // The stored side, and the types and namespaces to list.
    let mut stored: HashMap<ResourceRef, ResourceEntry> = HashMap::new();
    let mut kinds: BTreeSet<(String, String)> = BTreeSet::new();
    select::walk_filtered(repo, &manifest.roots, &opts.filter, &mut |r, e| {
        kinds.insert((r.group.clone(), r.kind.clone()));
        stored.insert(r, e);
        Ok(())
    })?;
    let strings = |key: &str| -> Vec<String> {
        scope
            .and_then(|s| s.get(key))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let namespaces: Vec<String> = match (&opts.filter.namespace, scope_kind) {
        (Some(ns), _) => vec![ns.clone()],
        (None, "namespaces") => strings("namespaces"),
        _ => Vec::new(),
    };
    let excluded_ns: HashSet<String> = strings("exclude_namespaces").into_iter().collect();
    let selector = scope.and_then(|s| s.get("selector")).and_then(Value::as_str).map(str::to_string);
    // The types to list: for a snapshot of a cluster, every type its scope took (so that the
    // first object of a type the snapshot had none of shows as added); for a dump folder, the
    // types it holds.
    let from_scope = match (manifest.source.kind.as_str(), scope) {
        ("cluster", Some(sc)) => {
            let stored_scope = super::live::Scope {
                include_resources: strings("include_resources"),
                exclude_resources: strings("exclude_resources"),
                ..Default::default()
            };
            let cluster_resources =
                sc.get("include_cluster_resources").and_then(Value::as_bool).unwrap_or(scope_kind == "cluster");
            // A type named in the scope that this cluster no longer serves: the stored types.
            super::live::select_types(&discovery.types, &stored_scope, cluster_resources).ok().map(|(t, _)| t)
        }
        _ => None,
    };
    let mut types: Vec<&ApiType> = match from_scope {
        Some(t) => t,
        None => kinds.iter().filter_map(|(g, k)| api_type(g, k)).collect(),
    };
    types.retain(|t| {
        opts.filter.kind.as_ref().is_none_or(|k| k.group == t.resource.group && k.kind == t.resource.kind)
            && (t.resource.namespaced || opts.filter.namespace.is_none())
    });
    let jobs = super::live::plan_lists(&types, &discovery.types, &namespaces, selector.as_deref());

    progress.start("objects", stored.len() as u64);
    let mut seen: HashMap<ResourceRef, usize> = HashMap::new();
    let mut added: Vec<(ResourceRef, usize)> = Vec::new();
    let mut modified: Vec<Modified> = Vec::new();
    let mut rx = cluster.list(jobs.clone(), &opts.list);
    while let Some(event) = rx.blocking_recv() {
        match event {
            ListEvent::Page { job, items } => {
                for item in items {
                    let item = seen_as_stored(item);
                    let Ok(r) = identity_of(&item) else { continue };
                    if !opts.filter.matches(&r)
                        || super::live::in_excluded_namespace(&excluded_ns, &item)
                        || !cmp.live_counts(&item)
                    {
                        continue;
                    }
                    match stored.get(&r) {
                        Some(entry) => {
                            if let Some(fields) = cmp.compare(&r, entry, item)? {
                                modified.push((r.clone(), job, fields));
                            }
                            seen.insert(r, job);
                        }
                        None => added.push((r, job)),
                    }
                    progress.advance(1);
                }
            }
            ListEvent::Restart { job, .. } => {
                // The type is listed again from the start: forget what its pages said.
                seen.retain(|_, j| *j != job);
                added.retain(|(_, j)| *j != job);
                modified.retain(|(_, j, _)| *j != job);
            }
            ListEvent::Retrying { job, message } => progress.warn(&format!("{}: {message}", jobs[job].describe())),
            ListEvent::Done { job, outcome } => {
                if outcome != TypeOutcome::Complete {
                    progress.finish();
                    return Err(Error::Kube(format!(
                        "{} could not be listed ({outcome:?}): the comparison would be incomplete",
                        jobs[job].describe()
                    )));
                }
            }
            ListEvent::Fatal(e) => {
                progress.finish();
                return Err(e.into());
            }
        }
    }
    progress.finish();
    let mut removed = Vec::new();
    for (r, entry) in &stored {
        if !seen.contains_key(r) && cmp.stored_counts(entry)? {
            removed.push(r.clone());
        }
    }
    Ok(cmp.report(added.into_iter().map(|(r, _)| r).collect(), removed, modified))
}

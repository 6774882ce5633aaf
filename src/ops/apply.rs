//! `kubesnap restore … --apply [--dry-run]`: resources of a snapshot put back into a cluster by
//! server-side apply, in dependency order, with the clean-up of [`crate::k8s::restore`].
//!
//! Every object is applied with kubesnap's own field manager (`kubesnap`), so its fields never
//! mix with a controller's and a later `kubectl apply` or GitOps sync sees who set what. Only
//! desired state is applied, never the server-owned fields. Each object gets its own result
//! (created, updated, unchanged, skipped, failed with the server's reason); one failure never
//! stops the others. With `dry_run` the server's dry run checks every object (admission,
//! validation, immutable fields, conflicts) and nothing is stored; the result then carries the
//! field-level changes against the live object.
//!
//! Owner references are re-pointed: to the uid of the owner this restore created or found, or
//! to the live owner's; a reference to an owner that exists nowhere is dropped (the garbage
//! collector would otherwise delete the object at once). An object stored at an API version the
//! cluster no longer serves is applied at the served version when the server keeps every field
//! (checked by a dry run first), and fails naming both versions otherwise.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::fielddiff::{self, FieldChange};
use super::select::Filter;
use super::Progress;
use crate::format::resource::{group_of, is_controller_owned, ResourceRef};
use crate::format::SnapshotId;
use crate::k8s::cluster::{ApplyParams, Cluster, ConnectOptions, KubeError, RetryPolicy, ServedVersions};
use crate::k8s::discovery::{ApiType, Discovery};
use crate::k8s::restore::{self as cleanup, CleanOptions};
use crate::repo::Repository;
use crate::{Error, Result};

/// kubesnap's field manager.
pub const FIELD_MANAGER: &str = "kubesnap";

/// What to do with an object that exists in the cluster already.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Existing {
    /// Leave it as it is.
    #[default]
    Skip,
    /// Apply the snapshot's fields over it.
    Update,
}

#[derive(Clone, Debug)]
pub struct ApplyOptions {
    pub connect: ConnectOptions,
    /// `TYPE/NAME` resources; empty: every resource passing the filter.
    pub resources: Vec<String>,
    pub filter: Filter,
    pub dry_run: bool,
    pub existing: Existing,
    /// Take fields another manager owns.
    pub force_conflicts: bool,
    /// Also objects a controller owns.
    pub include_owned: bool,
    pub clean: CleanOptions,
    pub show_secrets: bool,
    pub retry: Option<RetryPolicy>,
    /// How long to wait for a restored CustomResourceDefinition to be established.
    pub establish_timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    Updated,
    Unchanged,
    Skipped,
    Failed,
}

impl Action {
    /// The word a report shows: "created", or "would create" in a dry run.
    pub fn describe(self, dry_run: bool) -> &'static str {
        match (self, dry_run) {
            (Action::Created, false) => "created",
            (Action::Created, true) => "would create",
            (Action::Updated, false) => "updated",
            (Action::Updated, true) => "would update",
            (Action::Unchanged, _) => "unchanged",
            (Action::Skipped, _) => "skipped",
            (Action::Failed, false) => "failed",
            (Action::Failed, true) => "would fail",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResult {
    /// The resource as the snapshot names it.
    #[serde(flatten)]
    pub resource: ResourceRef,
    /// Its namespace in the cluster, when a namespace map moved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    pub action: Action,
    /// The API version applied (empty when nothing was sent).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// Why it was skipped or failed (the server's reason for a failure).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the clean-up changed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Updates: the fields that change, against the live object.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub skipped: usize,
    pub failed: usize,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyReport {
    pub snapshot: SnapshotId,
    pub context: String,
    pub server: String,
    pub dry_run: bool,
    pub counts: Counts,
    pub results: Vec<ApplyResult>,
}

/// Failures that stop the whole restore: the cluster is gone or refuses us.
fn fatal(e: &KubeError) -> bool {
    matches!(e, KubeError::Unreachable { .. } | KubeError::Unauthorized { .. } | KubeError::Config(_))
}

/// One object on its way to the cluster.
struct Item {
    resource: ResourceRef,
    object: Value,
    notes: Vec<String>,
    rank: u8,
    depth: usize,
}

/// (group, kind, namespace, name) of an object in the cluster.
type Key = (String, String, String, String);

fn target_key(obj: &Value) -> Key {
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default().to_string();
    let av = s("/apiVersion");
    (group_of(&av).to_string(), s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

/// An object without what the server alone sets, for comparing before and after an apply.
fn without_server_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.shift_remove("status");
        if let Some(Value::Object(m)) = o.get_mut("metadata") {
            for k in crate::format::resource::SERVER_OWNED_METADATA {
                m.shift_remove(k);
            }
        }
    }
    v
}

/// Paths of fields of `sent` that `got` lacks. A value the server normalised (a quantity `0.5`
/// given back as `500m`) is not a loss; a field the served version does not have is.
fn lost_fields(sent: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, got) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                match b.get(k) {
                    Some(vb) => lost_fields(va, vb, &p, out),
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() > b.len() {
                out.push(path.to_string());
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                lost_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Object(_) | Value::Array(_), Value::Null) => out.push(path.to_string()),
        _ => {}
    }
}

struct Restorer<'a> {
    cluster: Cluster,
    discovery: Discovery,
    opts: &'a ApplyOptions,
    /// What the cluster serves at versions other than the preferred ones.
    served: ServedVersions,
    /// uids of objects in the cluster (restored, found, or dry-run answers).
    uids: HashMap<Key, String>,
    /// Namespaces and custom types this restore creates first (for dry runs).
    pending_namespaces: HashSet<String>,
    pending_types: HashSet<(String, String)>,
}

impl Restorer<'_> {
    fn api_type(&self, group: &str, kind: &str) -> Option<&ApiType> {
        self.discovery.types.iter().find(|t| t.resource.group == group && t.resource.kind == kind)
    }

    /// Whether the cluster serves `kind` at `group/version`.
    fn serves(&mut self, group: &str, version: &str, kind: &str) -> Result<bool, KubeError> {
        Ok(self.served.resource(&self.cluster, group, version, kind)?.is_some())
    }

    fn object_path(t: &ApiType, version: &str, namespace: &str, name: &str) -> String {
        let mut t = t.clone();
        t.resource.version = version.to_string();
        t.object_path((!namespace.is_empty()).then_some(namespace), name)
    }

    /// The uid of an owner: restored or found by this run, else the live object's.
    fn owner_uid(&mut self, group: &str, kind: &str, namespace: &str, name: &str) -> Result<Option<String>, KubeError> {
        for ns in [namespace, ""] {
            let key = (group.to_string(), kind.to_string(), ns.to_string(), name.to_string());
            if let Some(uid) = self.uids.get(&key) {
                return Ok(Some(uid.clone()));
            }
        }
        let Some(t) = self.api_type(group, kind).cloned() else { return Ok(None) };
        let ns = if t.resource.namespaced { namespace } else { "" };
        let path = Self::object_path(&t, &t.resource.version, ns, name);
        let live = self.cluster.get_object(&path)?;
        let uid = live.as_ref().and_then(|v| v.pointer("/metadata/uid")).and_then(Value::as_str).map(str::to_string);
        if let Some(u) = &uid {
            self.uids.insert((group.into(), kind.into(), ns.into(), name.into()), u.clone());
        }
        Ok(uid)
    }

    /// Re-points owner references to the owners' uids in this cluster; drops the others.
    fn repoint_owners(&mut self, obj: &mut Value, notes: &mut Vec<String>) -> Result<()> {
        let Some(refs) = obj.pointer("/metadata/ownerReferences").and_then(Value::as_array).cloned() else {
            return Ok(());
        };
        let namespace = obj.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default().to_string();
        let mut kept = Vec::new();
        for mut r in refs {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
            let (av, kind, name) = (s("apiVersion"), s("kind"), s("name"));
            match self.owner_uid(group_of(&av), &kind, &namespace, &name) {
                Ok(Some(uid)) => {
                    r["uid"] = Value::String(uid);
                    kept.push(r);
                }
                Ok(None) => notes.push(format!("owner {kind}/{name} is not in the cluster: its reference was dropped")),
                Err(e) if fatal(&e) => return Err(e.into()),
                Err(e) => notes.push(format!("owner {kind}/{name} could not be read ({e}): its reference was dropped")),
            }
        }
        if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
            if kept.is_empty() {
                meta.shift_remove("ownerReferences");
            } else {
                meta.insert("ownerReferences".into(), Value::Array(kept));
            }
        }
        Ok(())
    }

    fn params(&self, dry_run: bool) -> ApplyParams {
        ApplyParams { manager: FIELD_MANAGER.into(), force: self.opts.force_conflicts, dry_run }
    }

    /// Restores one object; `Err` only for what stops the whole restore.
    fn restore_one(&mut self, item: &mut Item) -> Result<ApplyResult> {
        let dry_run = self.opts.dry_run;
        let (group, kind, namespace, name) = target_key(&item.object);
        let mut result = ApplyResult {
            resource: item.resource.clone(),
            target_namespace: (namespace != item.resource.namespace).then(|| namespace.clone()),
            action: Action::Failed,
            api_version: String::new(),
            reason: None,
            notes: std::mem::take(&mut item.notes),
            changes: Vec::new(),
        };
        let fail = |mut r: ApplyResult, reason: String| {
            r.action = Action::Failed;
            r.reason = Some(reason);
            Ok(r)
        };
        let type_name = if group.is_empty() { kind.clone() } else { format!("{kind}.{group}") };
        let Some(t) = self.api_type(&group, &kind).cloned() else {
            if dry_run && self.pending_types.contains(&(group.clone(), kind.clone())) {
                result.action = Action::Created;
                result.reason = Some(
                    "its CustomResourceDefinition is created by this restore first; not checked by the server".into(),
                );
                return Ok(result);
            }
            return fail(
                result,
                format!(
                    "{type_name} is not served by this cluster: install its CustomResourceDefinition, or restore it along with this object"
                ),
            );
        };
        if dry_run && t.resource.namespaced && self.pending_namespaces.contains(&namespace) {
            result.action = Action::Created;
            result.api_version = t.api_version();
            result.reason =
                Some(format!("namespace {namespace} is created by this restore first; not checked by the server"));
            return Ok(result);
        }
        // The version: the stored one where the cluster serves it, else the served one.
        let stored_av = item.object.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        let stored_version = stored_av.rsplit('/').next().unwrap_or_default().to_string();
        let mut version = stored_version.clone();
        let mut converted = false;
        let served = match self.serves(&group, &stored_version, &kind) {
            _ if stored_version == t.resource.version => true,
            Ok(s) => s,
            Err(e) if fatal(&e) => return Err(e.into()),
            Err(e) => return fail(result, format!("cannot tell whether this cluster serves {stored_av}: {e}")),
        };
        if !served {
            version = t.resource.version.clone();
            converted = true;
            item.object["apiVersion"] = Value::String(t.api_version());
            result.notes.push(format!(
                "stored as {stored_av}, which this cluster does not serve: applied as {}",
                t.api_version()
            ));
        }
        result.api_version = item.object["apiVersion"].as_str().unwrap_or_default().to_string();
        let path = Self::object_path(&t, &version, &namespace, &name);
        let live = match self.cluster.get_object(&path) {
            Ok(v) => v,
            Err(e) if fatal(&e) => return Err(e.into()),
            Err(e) => return fail(result, e.to_string()),
        };
        if let Some(l) = &live {
            if let Some(uid) = l.pointer("/metadata/uid").and_then(Value::as_str) {
                self.uids.insert((group.clone(), kind.clone(), namespace.clone(), name.clone()), uid.to_string());
            }
            if self.opts.existing == Existing::Skip {
                result.action = Action::Skipped;
                result.reason = Some("it exists in the cluster (--existing update applies over it)".into());
                return Ok(result);
            }
        }
        self.repoint_owners(&mut item.object, &mut result.notes)?;
        if converted {
            // Lossless or not at all: the served version must keep every field.
            match self.cluster.apply(&path, &item.object, &self.params(true)) {
                Ok(got) => {
                    let mut lost = Vec::new();
                    lost_fields(&without_server_fields(&item.object), &got, "", &mut lost);
                    if !lost.is_empty() {
                        return fail(
                            result,
                            format!(
                                "stored as {stored_av}, which this cluster does not serve; as {} the server would drop {}",
                                t.api_version(),
                                lost.join(", ")
                            ),
                        );
                    }
                }
                Err(e) if fatal(&e) => return Err(e.into()),
                Err(e) => {
                    return fail(
                        result,
                        format!(
                            "stored as {stored_av}, which this cluster does not serve; as {} the server refuses it: {}",
                            t.api_version(),
                            explain(&e)
                        ),
                    )
                }
            }
        }
        let got = match self.cluster.apply(&path, &item.object, &self.params(dry_run)) {
            Ok(v) => v,
            Err(e) if fatal(&e) => return Err(e.into()),
            Err(e) => return fail(result, explain(&e)),
        };
        if let Some(uid) = got.pointer("/metadata/uid").and_then(Value::as_str) {
            self.uids.insert((group.clone(), kind.clone(), namespace.clone(), name.clone()), uid.to_string());
        }
        result.action = match &live {
            None => Action::Created,
            Some(l) => {
                let mut changes = fielddiff::diff_values(&without_server_fields(l), &without_server_fields(&got));
                if fielddiff::is_secret(&group, &kind) && !self.opts.show_secrets {
                    fielddiff::redact_secret_changes(&mut changes);
                }
                if changes.is_empty() {
                    Action::Unchanged
                } else {
                    result.changes = changes;
                    Action::Updated
                }
            }
        };
        Ok(result)
    }

    /// Waits until each CustomResourceDefinition is established; the names of those that are
    /// not in time.
    fn wait_established(&self, names: &[String]) -> Result<Vec<String>> {
        let deadline = Instant::now() + self.opts.establish_timeout;
        let mut waiting: Vec<String> = names.to_vec();
        loop {
            let mut still = Vec::new();
            for n in waiting {
                let crd =
                    self.cluster.get_object(&format!("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{n}"))?;
                let established =
                    crd.as_ref().and_then(|c| c.pointer("/status/conditions")).and_then(Value::as_array).is_some_and(
                        |cs| {
                            cs.iter().any(|c| {
                                c.get("type").and_then(Value::as_str) == Some("Established")
                                    && c.get("status").and_then(Value::as_str) == Some("True")
                            })
                        },
                    );
                if !established {
                    still.push(n);
                }
            }
            if still.is_empty() || Instant::now() >= deadline {
                return Ok(still);
            }
            waiting = still;
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The server's refusal, with what to do about the usual ones.
fn explain(e: &KubeError) -> String {
    match e {
        KubeError::Api { code, reason, message, .. } => {
            let hint = if message.contains("field is immutable") || message.contains("Forbidden: updates to") {
                "; the field cannot change in place: delete the object and restore it again to recreate it"
            } else if *code == 409 && reason == "Conflict" {
                "; other field managers own these fields: --force-conflicts takes them over"
            } else {
                ""
            };
            format!("{code} {reason}: {message}{hint}")
        }
        other => other.to_string(),
    }
}

/// Orders the owner graph of the restored set: owners before what they own.
fn owner_depths(items: &mut [Item]) {
    let index: HashMap<(String, String, String), usize> = items
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let (g, k, ns, n) = target_key(&it.object);
            ((format!("{g}/{k}"), ns, n), i)
        })
        .collect();
    let owners: Vec<Vec<usize>> = items
        .iter()
        .map(|it| {
            let ns = it.object.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default();
            it.object
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .map(|refs| {
                    refs.iter()
                        .filter_map(|r| {
                            let av = r.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
                            let k = r.get("kind").and_then(Value::as_str).unwrap_or_default();
                            let n = r.get("name").and_then(Value::as_str).unwrap_or_default();
                            let gk = format!("{}/{k}", group_of(av));
                            index
                                .get(&(gk.clone(), ns.to_string(), n.to_string()))
                                .or_else(|| index.get(&(gk, String::new(), n.to_string())))
                                .copied()
                        })
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    // Longest path to a root, and an owner's rank at least (a Secret a Deployment owns goes
    // after the Deployment, so that its reference can be re-pointed); cycles (never valid, but
    // data is data) are cut after a bounded number of rounds.
    let mut depth = vec![0usize; items.len()];
    let mut rank: Vec<u8> = items.iter().map(|i| i.rank).collect();
    for _ in 0..items.len().min(64) {
        let mut changed = false;
        for (i, os) in owners.iter().enumerate() {
            for &o in os {
                if o != i && depth[o] + 1 > depth[i] {
                    depth[i] = depth[o] + 1;
                    changed = true;
                }
                if rank[o] > rank[i] {
                    rank[i] = rank[o];
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    for ((it, d), r) in items.iter_mut().zip(depth).zip(rank) {
        it.depth = d;
        it.rank = r;
    }
}

/// Restores resources of a snapshot into the cluster.
pub fn restore_apply(
    repo: &Repository,
    snapshot: &SnapshotId,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyReport> {
    let m = repo.load_manifest(snapshot)?;
    let mut chosen = super::restore::choose(repo, &m, &opts.resources, &opts.filter)?;
    // A namespace's objects need their Namespace: `-n NS` brings it along, as a snapshot's does.
    if let (true, Some(ns)) = (opts.resources.is_empty(), &opts.filter.namespace) {
        let kind = super::select::KindRef { group: String::new(), kind: "Namespace".into() };
        match super::select::find_resource(repo, &m.roots, &kind, ns, None) {
            Ok(found) => chosen.insert(0, found),
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let mut cluster = Cluster::connect(&opts.connect)?;
    if let Some(r) = &opts.retry {
        cluster.retry = r.clone();
    }
    cluster.get_json("/version")?;
    let discovery = cluster.discover()?;

    let redacted = m.secrets_redacted();
    let mut results = Vec::new();
    let mut items = Vec::new();
    for (r, e) in chosen {
        let mut object = super::read_resource(repo, &e, false)?;
        let skip = |reason: String| ApplyResult {
            resource: r.clone(),
            target_namespace: None,
            action: Action::Skipped,
            api_version: String::new(),
            reason: Some(reason),
            notes: Vec::new(),
            changes: Vec::new(),
        };
        if let Some(why) = cleanup::never_restored(&object) {
            results.push(skip(format!("never restored: {why}")));
            continue;
        }
        if redacted && r.group.is_empty() && r.kind == "Secret" {
            // Applying it would set every value to "".
            results
                .push(skip("the snapshot was taken with --redact-secrets: its Secret values were not stored".into()));
            continue;
        }
        if is_controller_owned(&object) && !opts.include_owned {
            let owner = object
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|refs| refs.iter().find(|r| r.get("controller") == Some(&Value::Bool(true))))
                .map(|o| {
                    format!(
                        "{}/{}",
                        o.get("kind").and_then(Value::as_str).unwrap_or_default(),
                        o.get("name").and_then(Value::as_str).unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            results.push(skip(format!(
                "owned by {owner}, whose controller recreates it (--include-owned restores it anyway)"
            )));
            continue;
        }
        let notes = cleanup::clean(&mut object, &opts.clean);
        let (group, kind, ns, _) = target_key(&object);
        let namespaced = !ns.is_empty();
        items.push(Item { resource: r, object, notes, rank: cleanup::rank(&group, &kind, namespaced), depth: 0 });
    }
    owner_depths(&mut items);
    items.sort_by(|a, b| (a.rank, a.depth, &a.resource).cmp(&(b.rank, b.depth, &b.resource)));

    let mut restorer = Restorer {
        cluster,
        discovery,
        opts,
        served: ServedVersions::default(),
        uids: HashMap::new(),
        pending_namespaces: HashSet::new(),
        pending_types: HashSet::new(),
    };
    progress.start("resources", items.len() as u64);
    let mut crds_done = false;
    let mut crd_names = Vec::new();
    for item in &mut items {
        if item.rank > 0 && !crds_done {
            crds_done = true;
            if !crd_names.is_empty() && !opts.dry_run {
                let late = restorer.wait_established(&crd_names)?;
                for n in late {
                    progress.warn(&format!(
                        "CustomResourceDefinition {n} is not established after {}s; its resources may fail",
                        opts.establish_timeout.as_secs()
                    ));
                }
                restorer.discovery = restorer.cluster.discover()?;
            }
        }
        let res = restorer.restore_one(item)?;
        if res.action != Action::Failed && res.action != Action::Skipped {
            let (group, kind, _, name) = target_key(&item.object);
            if group == "apiextensions.k8s.io" && kind == "CustomResourceDefinition" {
                crd_names.push(name.clone());
                if let (Some(g), Some(k)) = (
                    item.object.pointer("/spec/group").and_then(Value::as_str),
                    item.object.pointer("/spec/names/kind").and_then(Value::as_str),
                ) {
                    restorer.pending_types.insert((g.to_string(), k.to_string()));
                }
            }
            if group.is_empty() && kind == "Namespace" && res.action == Action::Created {
                restorer.pending_namespaces.insert(name);
            }
        }
        progress.advance(1);
        results.push(res);
    }
    progress.finish();
    let mut counts = Counts::default();
    for r in &results {
        match r.action {
            Action::Created => counts.created += 1,
            Action::Updated => counts.updated += 1,
            Action::Unchanged => counts.unchanged += 1,
            Action::Skipped => counts.skipped += 1,
            Action::Failed => counts.failed += 1,
        }
    }
    Ok(ApplyReport {
        snapshot: *snapshot,
        context: restorer.cluster.context.clone(),
        server: restorer.cluster.server.clone(),
        dry_run: opts.dry_run,
        counts,
        results,
    })
}

/// Parses `--namespace-map OLD=NEW` values.
pub fn parse_namespace_map(values: &[String]) -> Result<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for v in values {
        let Some((old, new)) = v.split_once('=') else {
            return Err(Error::Usage(format!("--namespace-map {v:?}: expected OLD=NEW")));
        };
        let (old, new) = (old.trim(), new.trim());
        if old.is_empty() || new.is_empty() {
            return Err(Error::Usage(format!("--namespace-map {v:?}: expected OLD=NEW")));
        }
        if map.insert(old.to_string(), new.to_string()).is_some() {
            return Err(Error::Usage(format!("--namespace-map: {old} is mapped twice")));
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lost_fields_names_what_a_version_drops() {
        let sent = json!({"spec":{"a":"0.5","b":{"c":[1,2]},"d":"x"}});
        let got = json!({"spec":{"a":"500m","b":{"c":[1,2]},"e":"y"},"status":{}});
        let mut lost = Vec::new();
        lost_fields(&sent, &got, "", &mut lost);
        assert_eq!(lost, vec!["spec.d"]);
        let mut none = Vec::new();
        lost_fields(&sent, &sent, "", &mut none);
        assert!(none.is_empty());
    }

    #[test]
    fn namespace_maps_parse() {
        let m = parse_namespace_map(&["a=b".into(), " c = d ".into()]).unwrap();
        assert_eq!(m.get("a").map(String::as_str), Some("b"));
        assert_eq!(m.get("c").map(String::as_str), Some("d"));
        for bad in ["a", "=b", "a=", ""] {
            assert!(parse_namespace_map(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(parse_namespace_map(&["a=b".into(), "a=c".into()]).is_err());
    }

    #[test]
    fn owners_come_before_what_they_own() {
        let obj = |kind: &str, name: &str, owner: Option<(&str, &str)>| {
            let mut v = json!({"apiVersion":"apps/v1","kind":kind,"metadata":{"name":name,"namespace":"n"}});
            if let Some((k, n)) = owner {
                v["metadata"]["ownerReferences"] =
                    json!([{"apiVersion":"apps/v1","kind":k,"name":n,"uid":"x","controller":true}]);
            }
            Item {
                resource: ResourceRef {
                    group: "apps".into(),
                    kind: kind.into(),
                    namespace: "n".into(),
                    name: name.into(),
                },
                object: v,
                notes: vec![],
                rank: 4,
                depth: 0,
            }
        };
        let mut items = vec![
            obj("Pod", "p", Some(("ReplicaSet", "rs"))),
            obj("ReplicaSet", "rs", Some(("Deployment", "d"))),
            obj("Deployment", "d", None),
        ];
        let mut secret = obj("Secret", "creds", Some(("Deployment", "d")));
        secret.rank = 3;
        items.push(secret);
        owner_depths(&mut items);
        let depths: Vec<usize> = items.iter().map(|i| i.depth).collect();
        assert_eq!(depths, vec![2, 1, 0, 1]);
        // A Secret (rank 3) owned by a Deployment (rank 4) goes after it.
        assert_eq!(items[3].rank, 4);
    }
}

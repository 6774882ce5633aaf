//! `kubesnap snapshot` of a live cluster (the default source): discovery, then every selected
//! type listed concurrently, page by page, each object stored as it arrives.
//!
//! What is captured:
//! - every served type that can be listed, at its preferred version, CRDs and aggregated APIs
//!   included, except those excluded by default ([`default_exclusion`]: Events, Leases,
//!   metrics, component statuses), which `--include-resource` brings back;
//! - in a namespace or application scope, the Namespace objects of the namespaces too;
//! - controller-owned objects, marked owned.
//!
//! What could not be captured is never silent: a type the credentials may not list (403) is
//! skipped and recorded in the manifest with the server's reason; a group whose discovery
//! failed is recorded the same way; a type whose list failed after retries makes the snapshot
//! *partial* (recorded, and the CLI's exit code says so), or fails it with `no_partial`. A
//! server that cannot be reached any more fails the snapshot, and nothing is committed.
//!
//! An unchanged cluster is cheap: objects carry source tags (uid + resourceVersion), and the
//! previous snapshot of the same cluster lends its stored entries to objects whose tag is
//! unchanged, without canonicalising, hashing or looking them up.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::Serialize;
use serde_json::{json, Value};

use super::snapshot::{SnapshotMeta, SnapshotReport, SnapshotWriter};
use super::Progress;
use crate::format::snapshot::{SkippedType, Source};
use crate::k8s::cluster::{Cluster, ConnectOptions, ListEvent, ListJob, ListOptions, RetryPolicy, TypeOutcome};
use crate::k8s::discovery::ApiType;
use crate::k8s::names::{TypeSource, TypeTable};
use crate::k8s::scope;
use crate::repo::Repository;
use crate::{timeutil, Error, Result};

/// Which objects a snapshot takes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Scope {
    /// Only these namespaces (empty: all).
    pub namespaces: Vec<String>,
    pub exclude_namespaces: Vec<String>,
    /// One application: `TYPE/NAME` in the (single) namespace.
    pub app: Option<String>,
    /// With `app`: also what it refers to (see [`crate::k8s::scope`]).
    pub with_references: bool,
    /// A label selector, passed to the server.
    pub selector: Option<String>,
    /// kubectl type names (`deployments`, `certificates.cert-manager.io`); empty: all.
    pub include_resources: Vec<String>,
    pub exclude_resources: Vec<String>,
    /// Cluster-scoped types (default: on for the whole cluster, off for a namespace or an
    /// application).
    pub include_cluster_resources: Option<bool>,
}

#[derive(Clone, Debug, Default)]
pub struct LiveSnapshotOptions {
    pub connect: ConnectOptions,
    /// The cluster name in the repository (default: the context's name).
    pub cluster: Option<String>,
    pub tags: Vec<String>,
    pub scope: Scope,
    /// Store Secrets' keys but not their values.
    pub redact_secrets: bool,
    pub list: ListOptions,
    /// Default: [`RetryPolicy::default`].
    pub retry: Option<RetryPolicy>,
    /// Fail, committing nothing, instead of committing a partial snapshot.
    pub no_partial: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct LiveSnapshotReport {
    #[serde(flatten)]
    pub snapshot: SnapshotReport,
    pub context: String,
    pub server: String,
    /// Types listed (a type listed in several namespaces counts once).
    pub types: usize,
    /// Types not captured, or not completely.
    pub skipped: Vec<SkippedType>,
    /// Some type could not be completed: the snapshot is recorded as partial.
    pub partial: bool,
    /// Requests retried after transient failures.
    pub retries: u64,
    /// Lists restarted after an expired continue token.
    pub restarts: u64,
}

const METRICS_GROUP: &str = "metrics.k8s.io";

/// Why a type is left out unless asked for by name, or `None`.
pub fn default_exclusion(t: &ApiType) -> Option<&'static str> {
    match (t.resource.group.as_str(), t.resource.plural.as_str()) {
        ("" | "events.k8s.io", "events") => Some("events are short-lived records of what happened, not state"),
        ("coordination.k8s.io", "leases" | "leasecandidates") => {
            Some("leases are renewed every few seconds by leader election and node heartbeats")
        }
        (METRICS_GROUP, _) => Some("metrics are measurements computed on demand, not state"),
        ("", "componentstatuses") => Some("component statuses are computed on demand, not stored"),
        _ => None,
    }
}

/// Splits repeated and comma-separated values.
fn names(values: &[String]) -> Vec<String> {
    values.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn resolve_types(table: &TypeTable, values: &[String], flag: &str) -> Result<HashSet<(String, String)>> {
    names(values)
        .iter()
        .map(|n| {
            table.resolve_type(n).map(|t| (t.group.clone(), t.kind.clone())).map_err(|e| {
                Error::Usage(format!("{flag} {n}: {e} (this cluster's types are listed by `kubectl api-resources`)"))
            })
        })
        .collect()
}

/// Types left out by default: (kubectl name, why).
type Excluded = Vec<(String, &'static str)>;

/// The types a scope lists, and those it leaves out by default.
pub(crate) fn select_types<'a>(
    types: &'a [ApiType],
    scope: &Scope,
    cluster_resources: bool,
) -> Result<(Vec<&'a ApiType>, Excluded)> {
    let mut table = TypeTable::new();
    for t in types {
        table.add(t.resource.clone(), TypeSource::Discovery);
    }
    let include = resolve_types(&table, &scope.include_resources, "--include-resource")?;
    let exclude = resolve_types(&table, &scope.exclude_resources, "--exclude-resource")?;
    let mut selected = Vec::new();
    let mut excluded = Vec::new();
    for t in types.iter().filter(|t| t.listable()) {
        let key = (t.resource.group.clone(), t.resource.kind.clone());
        if (!include.is_empty() && !include.contains(&key)) || exclude.contains(&key) {
            continue;
        }
        if !include.contains(&key) {
            if let Some(why) = default_exclusion(t) {
                excluded.push((t.display_name(), why));
                continue;
            }
        }
        if !t.resource.namespaced && !cluster_resources {
            continue;
        }
        selected.push(t);
    }
    Ok((selected, excluded))
}

fn namespace_type(types: &[ApiType]) -> Option<&ApiType> {
    types.iter().find(|t| t.resource.group.is_empty() && t.resource.plural == "namespaces")
}

/// The lists a scope makes: one per type, per namespace in a namespace scope, and there the
/// Namespace objects by name (unless every cluster-scoped type is listed anyway).
pub(crate) fn plan_lists(
    types: &[&ApiType],
    discovered: &[ApiType],
    namespaces: &[String],
    selector: Option<&str>,
) -> Vec<ListJob> {
    let whole_cluster = namespaces.is_empty();
    let mut jobs = Vec::new();
    for t in types {
        let job = |namespace: Option<String>| ListJob {
            api: (*t).clone(),
            namespace,
            label_selector: selector.map(str::to_string),
            field_selector: None,
        };
        if t.resource.namespaced && !whole_cluster {
            jobs.extend(namespaces.iter().map(|ns| job(Some(ns.clone()))));
        } else {
            jobs.push(job(None));
        }
    }
    let lists_namespaces = types.iter().any(|t| t.resource.group.is_empty() && t.resource.plural == "namespaces");
    if !whole_cluster && !lists_namespaces {
        if let Some(nt) = namespace_type(discovered) {
            for ns in namespaces {
                jobs.push(ListJob {
                    api: nt.clone(),
                    namespace: None,
                    label_selector: None,
                    field_selector: Some(format!("metadata.name={ns}")),
                });
            }
        }
    }
    jobs
}

/// Whether an object lies in an excluded namespace (a Namespace object by its own name).
pub(crate) fn in_excluded_namespace(exclude: &HashSet<String>, v: &Value) -> bool {
    if exclude.is_empty() {
        return false;
    }
    let is_ns_object = v.get("kind").and_then(Value::as_str) == Some("Namespace")
        && v.get("apiVersion").and_then(Value::as_str) == Some("v1");
    let own = if is_ns_object { v.pointer("/metadata/name") } else { v.pointer("/metadata/namespace") };
    exclude.contains(own.and_then(Value::as_str).unwrap_or_default())
}

/// Takes a snapshot of a live cluster.
pub fn snapshot_live(
    repo: &mut Repository,
    opts: &LiveSnapshotOptions,
    progress: &dyn Progress,
) -> Result<LiveSnapshotReport> {
    let scope = &opts.scope;
    if scope.app.is_some() && scope.selector.is_some() {
        return Err(Error::Usage(
            "--app and --selector cannot be combined: an application is chosen by its owner references".into(),
        ));
    }
    if scope.app.is_some() && scope.namespaces.len() > 1 {
        return Err(Error::Usage("--app takes one namespace (-n NAMESPACE)".into()));
    }
    // Whole seconds, as the format specifies.
    let time = chrono::SubsecRound::trunc_subsecs(timeutil::now(), 0);
    let mut cluster = Cluster::connect(&opts.connect)?;
    if let Some(r) = &opts.retry {
        cluster.retry = r.clone();
    }
    let cluster_name = opts.cluster.clone().filter(|c| !c.is_empty()).unwrap_or_else(|| cluster.context.clone());
    let cluster_name =
        if cluster_name.is_empty() { super::snapshot::DEFAULT_CLUSTER.to_string() } else { cluster_name };

    // The version first: the cheapest request that says whether the server is there at all.
    let version = cluster.get_json("/version")?;
    let discovery = cluster.discover()?;
    let cluster_uid = cluster
        .get_json_opt("/api/v1/namespaces/kube-system")?
        .and_then(|ns| ns.pointer("/metadata/uid").and_then(Value::as_str).map(str::to_string));

    let namespaces: Vec<String> = match (&scope.app, names(&scope.namespaces)) {
        (Some(_), ns) if ns.is_empty() => vec![cluster.default_namespace.clone()],
        (_, ns) => ns,
    };
    let exclude_ns: HashSet<String> = names(&scope.exclude_namespaces).into_iter().collect();
    let whole_cluster = namespaces.is_empty();
    let cluster_resources = scope.include_cluster_resources.unwrap_or(whole_cluster);
    let (types, excluded) = select_types(&discovery.types, scope, cluster_resources)?;

    let mut app_root = None;
    if let Some(app) = &scope.app {
        let mut table = TypeTable::new();
        for t in &discovery.types {
            table.add(t.resource.clone(), TypeSource::Discovery);
        }
        let (t, name) = table.resolve(app).map_err(|e| Error::Usage(format!("--app {app}: {e}")))?;
        if !t.namespaced {
            return Err(Error::Usage(format!("--app {app}: {} is not a namespaced type", t.display_name())));
        }
        app_root = Some((t.group.clone(), t.kind.clone(), name));
    }

    let jobs = plan_lists(&types, &discovery.types, &namespaces, scope.selector.as_deref());
    let type_count = types.len();

    let variant = if opts.redact_secrets { "cluster redact-secrets" } else { "cluster" };
    let mut writer = SnapshotWriter::new().with_source_tags(variant);
    if let Some(prev) = super::select::of_cluster(repo, Some(&cluster_name)).into_iter().next_back() {
        let m = repo.load_manifest(&prev.id)?;
        if m.source.kind == "cluster" {
            writer.reuse_unchanged_from(repo, &m.roots)?;
        }
    }

    progress.start("objects", 0);
    let mut outcomes: Vec<Option<TypeOutcome>> = vec![None; jobs.len()];
    let mut restarts = 0u64;
    let mut held: Vec<(usize, Value)> = Vec::new();
    let keep = |v: &Value| -> bool { !in_excluded_namespace(&exclude_ns, v) };
    let mut invalid = Vec::new();
    {
        let mut rx = cluster.list(jobs.clone(), &opts.list);
        while let Some(event) = rx.blocking_recv() {
            match event {
                ListEvent::Page { job, items } => {
                    for mut item in items {
                        if !keep(&item) {
                            continue;
                        }
                        if opts.redact_secrets {
                            scope::redact_secret(&mut item);
                        }
                        let in_app = app_root.is_some() && jobs[job].api.resource.namespaced;
                        if in_app {
                            held.push((job, item));
                            continue;
                        }
                        if let Err(reason) = writer.add_value(repo, job as u64, item)? {
                            invalid.push(format!("{}: {reason}", jobs[job].describe()));
                        }
                        progress.advance(1);
                    }
                }
                ListEvent::Restart { job, reason } => {
                    restarts += 1;
                    let dropped = writer.discard_origin(job as u64);
                    held.retain(|(j, _)| *j != job);
                    progress.warn(&format!(
                        "{}: {reason}; listing it again ({dropped} objects taken so far dropped)",
                        jobs[job].describe()
                    ));
                }
                ListEvent::Retrying { job, message } => progress.warn(&format!("{}: {message}", jobs[job].describe())),
                ListEvent::Done { job, outcome } => outcomes[job] = Some(outcome),
                ListEvent::Fatal(e) => {
                    progress.finish();
                    return Err(Error::Kube(format!("{e}; no snapshot was committed")));
                }
            }
        }
    }
    if let Some(i) = outcomes.iter().position(Option::is_none) {
        progress.finish();
        return Err(Error::Kube(format!(
            "the list of {} stopped without an answer; no snapshot was committed",
            jobs[i].describe()
        )));
    }
    if let Some((group, kind, name)) = &app_root {
        let values: Vec<Value> = held.iter().map(|(_, v)| v.clone()).collect();
        let picked = scope::select_app(&values, group, kind, name, scope.with_references).ok_or_else(|| {
            Error::not_found("application", format!("{kind}/{name} in namespace {}", namespaces.join(",")))
        })?;
        drop(values);
        let mut held: Vec<Option<(usize, Value)>> = held.into_iter().map(Some).collect();
        for i in picked {
            if let Some((job, v)) = held[i].take() {
                if let Err(reason) = writer.add_value(repo, job as u64, v)? {
                    invalid.push(format!("{}: {reason}", jobs[job].describe()));
                }
                progress.advance(1);
            }
        }
    }
    progress.finish();
    for m in &invalid {
        progress.warn(&format!("an object was not stored: {m}"));
    }

    // What could not be captured.
    let mut skipped: BTreeMap<(String, String), SkippedType> = BTreeMap::new();
    let mut partial = false;
    let mut failures = Vec::new();
    for (job, outcome) in jobs.iter().zip(&outcomes) {
        let (reason, is_partial) = match outcome {
            Some(TypeOutcome::Complete) | None => continue,
            Some(TypeOutcome::Forbidden(m)) => (format!("forbidden: {m}"), false),
            Some(TypeOutcome::Gone(m)) => (format!("no longer served: {m}"), false),
            Some(TypeOutcome::Failed { message, partial }) => {
                partial_note(&mut failures, job, message);
                (format!("the list failed: {message}"), *partial)
            }
        };
        if matches!(outcome, Some(TypeOutcome::Failed { .. })) {
            partial = true;
        }
        let reason = match &job.namespace {
            Some(ns) if job.api.resource.namespaced => format!("in namespace {ns}: {reason}"),
            _ => reason,
        };
        let key = (job.api.resource.group.clone(), job.api.resource.kind.clone());
        let e = skipped.entry(key).or_insert_with(|| SkippedType {
            group: job.api.resource.group.clone(),
            kind: job.api.resource.kind.clone(),
            reason: String::new(),
            partial: false,
        });
        if !e.reason.is_empty() {
            e.reason.push_str("; ");
        }
        e.reason.push_str(&reason);
        e.partial |= is_partial;
        if matches!(outcome, Some(TypeOutcome::Forbidden(_))) {
            progress.warn(&format!(
                "cannot list {} (403 Forbidden): skipped, and recorded as skipped in the snapshot",
                job.describe()
            ));
        }
    }
    for f in &discovery.failed {
        // An unavailable metrics server is common and its group is not captured anyway.
        if f.group == METRICS_GROUP && scope.include_resources.is_empty() {
            continue;
        }
        progress.warn(&format!("the types of {}/{} could not be discovered: {}", f.group, f.version, f.reason));
        skipped.insert(
            (f.group.clone(), format!("*{}", f.version)),
            SkippedType {
                group: f.group.clone(),
                kind: "*".into(),
                reason: format!("discovery of {}/{} failed: {}", f.group, f.version, f.reason),
                partial: false,
            },
        );
    }
    let skipped: Vec<SkippedType> = skipped.into_values().collect();
    if partial {
        for f in &failures {
            progress.warn(f);
        }
        if opts.no_partial {
            return Err(Error::Kube(format!(
                "{} type(s) could not be listed completely; no snapshot was committed (without --no-partial the snapshot is committed and recorded as partial)",
                failures.len()
            )));
        }
    }

    let scope_kind = if app_root.is_some() {
        "application"
    } else if whole_cluster {
        "cluster"
    } else {
        "namespaces"
    };
    let mut info = serde_json::Map::new();
    info.insert("context".into(), json!(cluster.context));
    info.insert("server".into(), json!(cluster.server));
    info.insert("server_version".into(), version.get("gitVersion").cloned().unwrap_or(Value::Null));
    info.insert("cluster_uid".into(), json!(cluster_uid));
    info.insert("discovery".into(), json!(discovery.mode));
    info.insert(
        "scope".into(),
        json!({
            "kind": scope_kind,
            "namespaces": namespaces,
            "exclude_namespaces": names(&scope.exclude_namespaces),
            "app": scope.app,
            "with_references": scope.with_references,
            "selector": scope.selector,
            "include_resources": names(&scope.include_resources),
            "exclude_resources": names(&scope.exclude_resources),
            "include_cluster_resources": cluster_resources,
        }),
    );
    info.insert("redact_secrets".into(), json!(opts.redact_secrets));
    info.insert(
        "excluded_by_default".into(),
        Value::Array(excluded.iter().map(|(n, why)| json!({"type": n, "reason": why})).collect()),
    );
    info.insert("types_listed".into(), json!(type_count));
    let meta = SnapshotMeta {
        cluster: cluster_name,
        tags: opts.tags.clone(),
        time,
        source: Source { kind: "cluster".into(), name: cluster.context.clone() },
        skipped: skipped.clone(),
        partial,
        discovery: discovery.types.iter().map(ApiType::type_info).collect(),
        source_info: info,
    };
    let names_of_jobs: Vec<String> = jobs.iter().map(ListJob::describe).collect();
    let report = writer.commit(repo, meta, &|origin| {
        names_of_jobs.get(origin as usize).map_or_else(|| format!("list {origin}"), |d| format!("the list of {d}"))
    })?;
    let mut listed: BTreeSet<(String, String)> = BTreeSet::new();
    for t in &types {
        listed.insert((t.resource.group.clone(), t.resource.plural.clone()));
    }
    Ok(LiveSnapshotReport {
        snapshot: report,
        context: cluster.context.clone(),
        server: cluster.server.clone(),
        types: listed.len(),
        skipped,
        partial,
        retries: cluster.retries(),
        restarts,
    })
}

fn partial_note(out: &mut Vec<String>, job: &ListJob, message: &str) {
    out.push(format!("could not list {}: {message}", job.describe()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(group: &str, plural: &str, kind: &str, namespaced: bool, verbs: &[&str]) -> ApiType {
        ApiType {
            resource: crate::k8s::names::ResourceType {
                group: group.into(),
                version: "v1".into(),
                kind: kind.into(),
                plural: plural.into(),
                singular: kind.to_lowercase(),
                short_names: match plural {
                    "configmaps" => vec!["cm".into()],
                    "deployments" => vec!["deploy".into()],
                    _ => vec![],
                },
                namespaced,
                categories: vec![],
            },
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn types() -> Vec<ApiType> {
        vec![
            t("", "configmaps", "ConfigMap", true, &["list"]),
            t("", "events", "Event", true, &["list"]),
            t("", "namespaces", "Namespace", false, &["list"]),
            t("", "secrets", "Secret", true, &["list"]),
            t("", "bindings", "Binding", true, &["create"]),
            t("apps", "deployments", "Deployment", true, &["list"]),
            t("coordination.k8s.io", "leases", "Lease", true, &["list"]),
            t("events.k8s.io", "events", "Event", true, &["list"]),
            t("metrics.k8s.io", "pods", "PodMetrics", true, &["list"]),
            t("rbac.authorization.k8s.io", "clusterroles", "ClusterRole", false, &["list"]),
        ]
    }

    #[test]
    fn type_selection() {
        let all = types();
        let scope = |inc: &[&str], exc: &[&str]| Scope {
            include_resources: inc.iter().map(|s| s.to_string()).collect(),
            exclude_resources: exc.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        for (inc, exc, cluster_res, want) in [
            (
                &[][..],
                &[][..],
                true,
                &["configmaps", "namespaces", "secrets", "deployments.apps", "clusterroles.rbac.authorization.k8s.io"]
                    [..],
            ),
            (&[], &[], false, &["configmaps", "secrets", "deployments.apps"]),
            (&[], &["secrets", "deploy"], false, &["configmaps"]),
            (&["cm,deployments.apps"], &[], true, &["configmaps", "deployments.apps"]),
            (&["events", "leases"], &[], true, &["events", "leases.coordination.k8s.io"]),
            (&["events.events.k8s.io"], &[], true, &["events.events.k8s.io"]),
            (&["cm"], &["cm"], true, &[]),
        ] {
            let (got, _) = select_types(&all, &scope(inc, exc), cluster_res).unwrap();
            let got: Vec<String> = got.iter().map(|t| t.display_name()).collect();
            assert_eq!(got, want, "include {inc:?} exclude {exc:?}");
        }
        let (_, excluded) = select_types(&all, &Scope::default(), true).unwrap();
        let excluded: Vec<&str> = excluded.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(excluded, ["events", "leases.coordination.k8s.io", "events.events.k8s.io", "pods.metrics.k8s.io"]);
        let err = select_types(&all, &scope(&["widgets"], &[]), true).unwrap_err();
        assert!(err.to_string().contains("--include-resource widgets"), "{err}");
    }
}

//! Pure functions from a `SnapshotSchedule` to what should exist: the validation, the Job's one
//! command, the desired CronJob and run-now Job, the next run time and nominal interval, and a
//! finished Job's result. No I/O: the controller fetches, calls these, and applies.

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::crd::{ConcurrencyPolicy, Repository, Run, SnapshotSchedule};

/// The API group's annotation that asks for a run now (any new value starts one Job).
pub const RUN_NOW: &str = "kubesnap.io/run-now";
/// The label on CronJobs, Jobs and pods that names their schedule.
pub const SCHEDULE_LABEL: &str = "kubesnap.io/schedule";
/// The annotation holding the schedule's full name (labels are limited to 63 characters).
pub const SCHEDULE_ANNOTATION: &str = "kubesnap.io/schedule";
/// The snapshot container's name.
pub const CONTAINER: &str = "snapshot";
/// Where the image keeps the binary.
pub const BINARY: &str = "/usr/local/bin/kubesnap";
/// The default service account of snapshot Jobs.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "kubesnap-snapshot";
/// How many runs the status keeps.
pub const RUNS_KEPT: usize = 10;

/// Why a schedule cannot be put in place: the condition's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub reason: &'static str,
    pub message: String,
}

impl Invalid {
    fn new(reason: &'static str, message: impl Into<String>) -> Invalid {
        Invalid { reason, message: message.into() }
    }
}

/// What the operator knows beyond the schedule itself.
#[derive(Clone, Debug, Default)]
pub struct Defaults {
    /// The image of Jobs whose schedule names none (the operator's own).
    pub image: String,
    /// Image prefixes a schedule may name (`job.image`); empty: only the default image.
    pub allowed_images: Vec<String>,
    /// Service accounts a schedule may name (`job.serviceAccountName`) besides
    /// `kubesnap-snapshot`: whoever may create a schedule runs its Job as that account.
    pub allowed_service_accounts: Vec<String>,
}

/// A parsed schedule: its cron pattern and time zone.
#[derive(Clone, Debug)]
pub struct Timing {
    cron: croner::Cron,
    tz: chrono_tz::Tz,
}

const DESCRIPTORS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const NAMES: [&str; 19] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", "SUN", "MON", "TUE", "WED",
    "THU", "FRI", "SAT",
];

/// Whether a cron field uses only standard syntax: lists of `*`, `?`, numbers and month or
/// day names, with ranges and steps.
fn standard_field(f: &str) -> bool {
    f.split(',').all(|item| {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let atom = |a: &str| {
            a == "*"
                || a == "?"
                || (!a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
                || NAMES.contains(&a.to_ascii_uppercase().as_str())
        };
        step.is_none_or(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            && match range.split_once('-') {
                Some((a, b)) => atom(a) && atom(b) && a != "*" && b != "*",
                None => atom(range),
            }
    })
}

/// Parses a schedule as Kubernetes' CronJob controller reads it: five fields (minute, hour,
/// day of month, month, day of week; numbers, names, `*`, `?`, ranges, lists and steps) or a
/// descriptor. croner's extensions (`L`, `W`, `#`, seconds) are refused, since the CronJob
/// would refuse them.
pub fn parse_timing(schedule: &str, time_zone: Option<&str>) -> Result<Timing, Invalid> {
    let s = schedule.trim();
    let pattern = match DESCRIPTORS.iter().find(|(d, _)| *d == s) {
        Some((_, p)) => (*p).to_string(),
        None if s.starts_with('@') => {
            return Err(Invalid::new(
                "InvalidSchedule",
                format!("schedule {s:?}: unknown descriptor (use @hourly, @daily, @weekly, @monthly or @yearly, or five cron fields)"),
            ))
        }
        None => {
            let fields: Vec<&str> = s.split_whitespace().collect();
            if fields.len() != 5 {
                return Err(Invalid::new(
                    "InvalidSchedule",
                    format!("schedule {s:?}: expected five fields (minute hour day-of-month month day-of-week), found {}", fields.len()),
                ));
            }
            if let Some(f) = fields.iter().find(|f| !standard_field(f)) {
                return Err(Invalid::new("InvalidSchedule", format!("schedule {s:?}: field {f:?} is not standard cron")));
            }
            fields.join(" ")
        }
    };
    let cron = croner::Cron::from_str(&pattern)
        .map_err(|e| Invalid::new("InvalidSchedule", format!("schedule {s:?}: {e}")))?;
    let tz = match time_zone.map(str::trim).filter(|z| !z.is_empty()) {
        None => chrono_tz::UTC,
        Some(z) => chrono_tz::Tz::from_str(z).map_err(|_| {
            Invalid::new("InvalidTimeZone", format!("timeZone {z:?} is not an IANA time zone name (e.g. Europe/Paris)"))
        })?,
    };
    Ok(Timing { cron, tz })
}

impl Timing {
    /// The next run strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.tz);
        self.cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
    }

    /// The longest gap between consecutive runs over the next 64: the interval after which a
    /// missing success is overdue (a weekday schedule's weekend, not its weekday gap).
    pub fn interval_seconds(&self, from: DateTime<Utc>) -> Option<i64> {
        let mut t = self.next_after(from)?;
        let mut longest = 0;
        for _ in 0..64 {
            let n = self.next_after(t)?;
            longest = longest.max((n - t).num_seconds());
            t = n;
        }
        Some(longest)
    }
}

/// Checks what the schedule says on its own (not whether its references exist).
pub fn validate(s: &SnapshotSchedule, defaults: &Defaults) -> Result<Timing, Invalid> {
    let spec = &s.spec;
    let timing = parse_timing(&spec.schedule, spec.time_zone.as_deref())?;
    if spec.repository.trim().is_empty() {
        return Err(Invalid::new("RepositoryNotFound", "spec.repository must name a Repository in this namespace"));
    }
    if let Some(app) = &spec.scope.application {
        if !spec.scope.namespaces.is_empty() {
            return Err(Invalid::new(
                "InvalidScope",
                "scope.application and scope.namespaces exclude each other: an application lives in scope.application.namespace",
            ));
        }
        if app.selector_conflict(spec.scope.selector.as_deref()) {
            return Err(Invalid::new("InvalidScope", "scope.application and scope.selector exclude each other"));
        }
        if app.resource.split_once('/').is_none_or(|(t, n)| t.is_empty() || n.is_empty()) || app.namespace.is_empty() {
            return Err(Invalid::new(
                "InvalidScope",
                format!("scope.application: expected resource TYPE/NAME (e.g. deployment/web) and a namespace, got {:?} in {:?}", app.resource, app.namespace),
            ));
        }
    }
    if let Some(within) = spec.retention.as_ref().and_then(|r| r.keep_within.as_deref()) {
        if crate::timeutil::parse_age(within).is_none() {
            return Err(Invalid::new(
                "InvalidRetention",
                format!("retention.keepWithin {within:?}: expected a duration such as 7d or 36h"),
            ));
        }
    }
    if let Some(image) = &spec.job.image {
        let allowed = image == &defaults.image || defaults.allowed_images.iter().any(|p| image.starts_with(p.as_str()));
        if !allowed {
            return Err(Invalid::new(
                "ImageNotAllowed",
                format!("job.image {image:?} is not allowed: the operator runs only its own image and those its --allowed-image prefixes name"),
            ));
        }
    }
    if let Some(sa) = spec.job.service_account_name.as_deref().filter(|sa| *sa != DEFAULT_SERVICE_ACCOUNT) {
        if !defaults.allowed_service_accounts.iter().any(|a| a == sa) {
            return Err(Invalid::new(
                "ServiceAccountNotAllowed",
                format!(
                    "job.serviceAccountName {sa:?} is not allowed: Jobs run as {DEFAULT_SERVICE_ACCOUNT} or an account the operator's --allowed-service-account names"
                ),
            ));
        }
    }
    Ok(timing)
}

impl super::crd::Application {
    fn selector_conflict(&self, selector: Option<&str>) -> bool {
        selector.is_some_and(|s| !s.trim().is_empty())
    }
}

/// The cluster name the schedule's snapshots are recorded under.
pub fn cluster_name(s: &SnapshotSchedule) -> String {
    match s.spec.cluster.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => c.to_string(),
        None => format!(
            "{}-{}",
            s.metadata.namespace.as_deref().unwrap_or("default"),
            s.metadata.name.as_deref().unwrap_or_default()
        ),
    }
}

/// The arguments of the Job's one command, `kubesnap snapshot ...`.
pub fn snapshot_args(s: &SnapshotSchedule, repo: &Repository) -> Vec<String> {
    let spec = &s.spec;
    let mut a: Vec<String> = vec!["snapshot".into(), "--cluster".into(), cluster_name(s)];
    let mut push = |flag: &str, value: String| {
        a.push(flag.to_string());
        a.push(value);
    };
    for t in &spec.tags {
        push("--tag", t.clone());
    }
    let sc = &spec.scope;
    match &sc.application {
        Some(app) => {
            push("--app", app.resource.clone());
            push("--namespace", app.namespace.clone());
        }
        None if !sc.namespaces.is_empty() => push("--namespace", sc.namespaces.join(",")),
        None => {}
    }
    if !sc.exclude_namespaces.is_empty() {
        push("--exclude-namespace", sc.exclude_namespaces.join(","));
    }
    if let Some(sel) = sc.selector.as_deref().filter(|s| !s.trim().is_empty()) {
        push("--selector", sel.to_string());
    }
    if !sc.include_resources.is_empty() {
        push("--include-resource", sc.include_resources.join(","));
    }
    if !sc.exclude_resources.is_empty() {
        push("--exclude-resource", sc.exclude_resources.join(","));
    }
    if let Some(r) = &spec.retention {
        for (flag, v) in [
            ("--keep-last", r.keep_last),
            ("--keep-hourly", r.keep_hourly),
            ("--keep-daily", r.keep_daily),
            ("--keep-weekly", r.keep_weekly),
            ("--keep-monthly", r.keep_monthly),
            ("--keep-yearly", r.keep_yearly),
        ] {
            if let Some(n) = v {
                push(flag, n.to_string());
            }
        }
        if let Some(w) = &r.keep_within {
            push("--keep-within", w.clone());
        }
    }
    for (k, v) in &repo.spec.options {
        push("--option", format!("{k}={v}"));
    }
    push("--report-file", "/dev/termination-log".into());
    if let Some(b) = sc.include_cluster_resources {
        a.push(format!("--include-cluster-resources={b}"));
    }
    if sc.application.as_ref().is_some_and(|app| app.with_references) {
        a.push("--with-references".into());
    }
    if sc.redact_secrets {
        a.push("--redact-secrets".into());
    }
    a
}

/// A Kubernetes name of at most `max` characters: `base` itself, or its start and a hash.
fn bounded_name(base: &str, max: usize) -> String {
    if base.len() <= max {
        return base.to_string();
    }
    let hash = blake3::hash(base.as_bytes()).to_hex();
    let keep = base[..max - 9].trim_end_matches(['-', '.']);
    format!("{keep}-{}", &hash[..8])
}

/// The CronJob's name (CronJob names are limited to 52 characters, its Jobs' suffix included).
pub fn cron_job_name(s: &SnapshotSchedule) -> String {
    bounded_name(&format!("kubesnap-{}", s.metadata.name.as_deref().unwrap_or_default()), 52)
}

/// The value of the schedule label.
pub fn label_value(s: &SnapshotSchedule) -> String {
    bounded_name(s.metadata.name.as_deref().unwrap_or_default(), 63)
}

fn owner_reference(s: &SnapshotSchedule) -> Value {
    json!({
        "apiVersion": "kubesnap.io/v1alpha1",
        "kind": "SnapshotSchedule",
        "name": s.metadata.name,
        "uid": s.metadata.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The Job template every run uses (scheduled or run now).
pub fn job_template(s: &SnapshotSchedule, repo: &Repository, defaults: &Defaults) -> Value {
    let spec = &s.spec;
    let job = &spec.job;
    let name = s.metadata.name.clone().unwrap_or_default();
    let labels = json!({
        "app.kubernetes.io/name": "kubesnap",
        "app.kubernetes.io/component": "snapshot",
        "app.kubernetes.io/managed-by": "kubesnap-operator",
        SCHEDULE_LABEL: label_value(s),
    });
    let mut env = vec![
        json!({"name": "KUBESNAP_REPOSITORY", "value": repo.spec.url}),
        json!({"name": "KUBESNAP_PASSWORD", "valueFrom": {"secretKeyRef": {
            "name": repo.spec.password_secret_ref.name, "key": repo.spec.password_secret_ref.key}}}),
        json!({"name": "KUBESNAP_CACHE_DIR", "value": "/cache"}),
    ];
    env.push(json!({"name": "HOME", "value": "/tmp"}));
    let mut container = json!({
        "name": CONTAINER,
        "image": job.image.clone().unwrap_or_else(|| defaults.image.clone()),
        "command": [BINARY],
        "args": snapshot_args(s, repo),
        "env": env,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "runAsNonRoot": true,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}, {"name": "tmp", "mountPath": "/tmp"}],
    });
    if let Some(p) = &job.image_pull_policy {
        container["imagePullPolicy"] = json!(p);
    }
    if let Some(c) = &repo.spec.credentials_secret_ref {
        container["envFrom"] = json!([{"secretRef": {"name": c.name}}]);
    }
    if let Some(r) = &job.resources {
        let mut res = serde_json::Map::new();
        if !r.requests.is_empty() {
            res.insert("requests".into(), json!(r.requests));
        }
        if !r.limits.is_empty() {
            res.insert("limits".into(), json!(r.limits));
        }
        container["resources"] = Value::Object(res);
    }
    let mut pod = json!({
        "restartPolicy": "Never",
        "serviceAccountName": job.service_account_name.clone().unwrap_or_else(|| DEFAULT_SERVICE_ACCOUNT.into()),
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "fsGroup": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "cache", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
    });
    if !job.node_selector.is_empty() {
        pod["nodeSelector"] = json!(job.node_selector);
    }
    if !job.tolerations.is_empty() {
        pod["tolerations"] = json!(job.tolerations);
    }
    let mut job_spec = json!({
        "backoffLimit": job.backoff_limit.unwrap_or(1),
        // A partial snapshot (exit code 10) was committed: running it again would not help.
        "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
            "containerName": CONTAINER, "operator": "In", "values": [10]}}]},
        "template": {"metadata": {"labels": labels.clone(), "annotations": {SCHEDULE_ANNOTATION: name}}, "spec": pod},
    });
    if let Some(d) = job.active_deadline_seconds {
        job_spec["activeDeadlineSeconds"] = json!(d);
    }
    json!({"metadata": {"labels": labels, "annotations": {SCHEDULE_ANNOTATION: name}}, "spec": job_spec})
}

/// The CronJob the schedule should have, for server-side apply.
pub fn desired_cron_job(s: &SnapshotSchedule, repo: &Repository, defaults: &Defaults) -> Value {
    let spec = &s.spec;
    let template = job_template(s, repo, defaults);
    let mut cron = json!({
        "schedule": spec.schedule.trim(),
        "suspend": spec.suspend,
        "concurrencyPolicy": match spec.concurrency_policy.unwrap_or_default() {
            ConcurrencyPolicy::Allow => "Allow",
            ConcurrencyPolicy::Forbid => "Forbid",
            ConcurrencyPolicy::Replace => "Replace",
        },
        "successfulJobsHistoryLimit": spec.successful_jobs_history_limit.unwrap_or(3),
        "failedJobsHistoryLimit": spec.failed_jobs_history_limit.unwrap_or(3),
        "jobTemplate": template,
    });
    if let Some(tz) = spec.time_zone.as_deref().map(str::trim).filter(|z| !z.is_empty()) {
        cron["timeZone"] = json!(tz);
    }
    if let Some(d) = spec.starting_deadline_seconds {
        cron["startingDeadlineSeconds"] = json!(d);
    }
    json!({
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": cron_job_name(s),
            "namespace": s.metadata.namespace,
            "labels": template["metadata"]["labels"],
            "annotations": {SCHEDULE_ANNOTATION: s.metadata.name},
            "ownerReferences": [owner_reference(s)],
        },
        "spec": cron,
    })
}

/// The one-off Job of a run-now request (`value` is the annotation's value).
pub fn run_now_job(s: &SnapshotSchedule, repo: &Repository, defaults: &Defaults, value: &str) -> Value {
    let template = job_template(s, repo, defaults);
    let hash = blake3::hash(value.as_bytes()).to_hex();
    let base = bounded_name(&format!("kubesnap-{}", s.metadata.name.as_deref().unwrap_or_default()), 49);
    let mut metadata = template["metadata"].clone();
    metadata["name"] = json!(format!("{base}-now-{}", &hash[..8]));
    metadata["namespace"] = json!(s.metadata.namespace);
    metadata["annotations"][RUN_NOW] = json!(value);
    metadata["ownerReferences"] = json!([owner_reference(s)]);
    let mut spec = template["spec"].clone();
    // Run-now Jobs have no CronJob to keep their history short: they go a day after finishing.
    spec["ttlSecondsAfterFinished"] = json!(86400);
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": spec})
}

fn condition_true(job: &Value, kind: &str) -> Option<String> {
    job.pointer("/status/conditions")?.as_array()?.iter().find_map(|c| {
        (c.get("type").and_then(Value::as_str) == Some(kind) && c.get("status").and_then(Value::as_str) == Some("True"))
            .then(|| {
                let reason = c.get("reason").and_then(Value::as_str).unwrap_or_default();
                let message = c.get("message").and_then(Value::as_str).unwrap_or_default();
                match (reason.is_empty(), message.is_empty()) {
                    (false, false) => format!("{reason}: {message}"),
                    (false, true) => reason.to_string(),
                    _ => message.to_string(),
                }
            })
    })
}

/// The report a snapshot container left in its termination message, if any.
fn termination_report(pods: &[Value]) -> Option<Value> {
    let mut found: Vec<(String, Value)> = pods
        .iter()
        .flat_map(|p| p.pointer("/status/containerStatuses").and_then(Value::as_array).cloned().unwrap_or_default())
        .filter(|c| c.get("name").and_then(Value::as_str) == Some(CONTAINER))
        .filter_map(|c| {
            let t = c.pointer("/state/terminated")?;
            let finished = t.get("finishedAt").and_then(Value::as_str).unwrap_or_default().to_string();
            let msg = t.get("message").and_then(Value::as_str)?;
            Some((finished, serde_json::from_str::<Value>(msg).ok()?))
        })
        .collect();
    // The last attempt decides.
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found.pop().map(|(_, v)| v)
}

/// The result of a finished Job, or `None` while it runs.
pub fn run_of(job: &Value, pods: &[Value]) -> Option<Run> {
    let complete = condition_true(job, "Complete").is_some()
        || job.pointer("/status/succeeded").and_then(Value::as_i64).unwrap_or(0) > 0;
    let failed = condition_true(job, "Failed");
    if !complete && failed.is_none() {
        return None;
    }
    let s = |p: &str| job.pointer(p).and_then(Value::as_str).map(str::to_string);
    let end = s("/status/completionTime").or_else(|| {
        job.pointer("/status/conditions").and_then(Value::as_array).and_then(|cs| {
            cs.iter()
                .filter(|c| c.get("status").and_then(Value::as_str) == Some("True"))
                .filter_map(|c| c.get("lastTransitionTime").and_then(Value::as_str))
                .max()
                .map(str::to_string)
        })
    });
    let mut run = Run {
        job_name: s("/metadata/name").unwrap_or_default(),
        start_time: s("/status/startTime"),
        end_time: end,
        result: if complete { "Succeeded".into() } else { "Failed".into() },
        ..Run::default()
    };
    match termination_report(pods) {
        Some(r) => {
            let code = r.get("exitCode").and_then(Value::as_i64).unwrap_or(1);
            run.result = match code {
                0 => "Succeeded",
                10 => "Partial",
                _ => "Failed",
            }
            .into();
            if let Some(rep) = r.get("report") {
                run.snapshot_id = rep.get("id").and_then(Value::as_str).map(str::to_string);
                run.objects = rep.get("objects").and_then(Value::as_u64);
                run.bytes_added = rep.get("bytes_added").and_then(Value::as_u64);
                if code == 10 {
                    let shown = rep.get("skipped").and_then(Value::as_array).map(Vec::len).unwrap_or(0);
                    let n = shown as u64 + rep.get("skippedNotShown").and_then(Value::as_u64).unwrap_or(0);
                    run.message = Some(format!("committed, but partial: {n} type(s) skipped or incomplete"));
                }
            }
            if let Some(e) = r.get("error").and_then(Value::as_str) {
                run.message = Some(e.to_string());
            }
        }
        None if !complete => run.message = failed,
        None => {}
    }
    Some(run)
}

/// Merges new runs into the kept list: newest first, one per Job, at most [`RUNS_KEPT`].
pub fn merge_runs(kept: &[Run], new: Vec<Run>) -> Vec<Run> {
    let mut by_job: BTreeMap<String, Run> = kept.iter().map(|r| (r.job_name.clone(), r.clone())).collect();
    for r in new {
        by_job.insert(r.job_name.clone(), r);
    }
    let mut runs: Vec<Run> = by_job.into_values().collect();
    runs.sort_by(|a, b| (&b.start_time, &b.job_name).cmp(&(&a.start_time, &a.job_name)));
    runs.truncate(RUNS_KEPT);
    runs
}

#[cfg(test)]
mod tests {
    use super::super::crd::*;
    use super::*;

    fn schedule(spec: SnapshotScheduleSpec) -> SnapshotSchedule {
        let mut s = SnapshotSchedule::new("nightly", spec);
        s.metadata.namespace = Some("backups".into());
        s.metadata.uid = Some("u-1".into());
        s
    }

    fn repo() -> Repository {
        let mut r = Repository::new(
            "main",
            RepositorySpec {
                url: "s3://bucket/k".into(),
                options: [("endpoint".to_string(), "http://minio:9000".to_string())].into(),
                credentials_secret_ref: Some(SecretRef { name: "s3-creds".into() }),
                password_secret_ref: SecretKeyRef { name: "pw".into(), key: "password".into() },
            },
        );
        r.metadata.namespace = Some("backups".into());
        r
    }

    fn base() -> SnapshotScheduleSpec {
        SnapshotScheduleSpec { schedule: "0 2 * * *".into(), repository: "main".into(), ..Default::default() }
    }

    const IMAGE: &str = "ghcr.io/kubesnap/kubesnap:0.1.0";

    fn defaults() -> Defaults {
        Defaults {
            image: IMAGE.into(),
            allowed_images: vec!["registry.example.com/".into()],
            allowed_service_accounts: vec!["snap".into()],
        }
    }

    #[test]
    fn arguments_follow_scope_filters_and_retention() {
        let mut app_scope = base();
        app_scope.scope.application =
            Some(Application { resource: "deployment/web".into(), namespace: "shop".into(), with_references: true });
        let mut ns_scope = base();
        ns_scope.scope = Scope {
            namespaces: vec!["shop".into(), "billing".into()],
            selector: Some("tier=db".into()),
            include_resources: vec!["deployments".into(), "cm".into()],
            exclude_resources: vec!["secrets".into()],
            include_cluster_resources: Some(false),
            redact_secrets: true,
            ..Default::default()
        };
        ns_scope.tags = vec!["nightly".into()];
        ns_scope.cluster = Some("prod".into());
        let mut retained = base();
        retained.scope.exclude_namespaces = vec!["scratch".into()];
        retained.retention = Some(Retention {
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_within: Some("36h".into()),
            ..Default::default()
        });
        let tail = ["--option", "endpoint=http://minio:9000", "--report-file", "/dev/termination-log"];
        let table: Vec<(SnapshotScheduleSpec, Vec<&str>)> = vec![
            (base(), [&["snapshot", "--cluster", "backups-nightly"][..], &tail].concat()),
            (
                app_scope,
                [
                    &["snapshot", "--cluster", "backups-nightly", "--app", "deployment/web", "--namespace", "shop"][..],
                    &tail,
                    &["--with-references"],
                ]
                .concat(),
            ),
            (
                ns_scope,
                [
                    &[
                        "snapshot",
                        "--cluster",
                        "prod",
                        "--tag",
                        "nightly",
                        "--namespace",
                        "shop,billing",
                        "--selector",
                        "tier=db",
                        "--include-resource",
                        "deployments,cm",
                        "--exclude-resource",
                        "secrets",
                    ][..],
                    &tail,
                    &["--include-cluster-resources=false", "--redact-secrets"],
                ]
                .concat(),
            ),
            (
                retained,
                [
                    &[
                        "snapshot",
                        "--cluster",
                        "backups-nightly",
                        "--exclude-namespace",
                        "scratch",
                        "--keep-daily",
                        "7",
                        "--keep-weekly",
                        "4",
                        "--keep-within",
                        "36h",
                    ][..],
                    &tail,
                ]
                .concat(),
            ),
        ];
        for (spec, want) in table {
            let s = schedule(spec);
            assert_eq!(snapshot_args(&s, &repo()), want, "{:?}", s.spec);
        }
    }

    #[test]
    fn the_cron_job_carries_schedule_suspend_and_pod_settings() {
        let mut spec = base();
        spec.suspend = true;
        spec.time_zone = Some("Europe/Paris".into());
        spec.concurrency_policy = Some(ConcurrencyPolicy::Replace);
        spec.successful_jobs_history_limit = Some(5);
        spec.starting_deadline_seconds = Some(600);
        spec.job = JobSettings {
            image: Some("registry.example.com/kubesnap:dev".into()),
            image_pull_policy: Some("Always".into()),
            service_account_name: Some("snap".into()),
            resources: Some(Resources {
                requests: [("cpu".to_string(), "100m".to_string())].into(),
                limits: [("memory".to_string(), "1Gi".to_string())].into(),
            }),
            node_selector: [("disk".to_string(), "ssd".to_string())].into(),
            tolerations: vec![Toleration {
                key: Some("dedicated".into()),
                operator: Some("Exists".into()),
                ..Default::default()
            }],
            backoff_limit: Some(2),
            active_deadline_seconds: Some(3600),
        };
        let s = schedule(spec);
        let cj = desired_cron_job(&s, &repo(), &defaults());
        assert_eq!(cj["metadata"]["name"], "kubesnap-nightly");
        assert_eq!(cj["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(cj["metadata"]["ownerReferences"][0]["controller"], true);
        let spec = &cj["spec"];
        assert_eq!(
            (&spec["schedule"], &spec["suspend"], &spec["timeZone"], &spec["concurrencyPolicy"]),
            (&json!("0 2 * * *"), &json!(true), &json!("Europe/Paris"), &json!("Replace"))
        );
        assert_eq!((&spec["successfulJobsHistoryLimit"], &spec["failedJobsHistoryLimit"]), (&json!(5), &json!(3)));
        assert_eq!(spec["startingDeadlineSeconds"], 600);
        let job = &spec["jobTemplate"]["spec"];
        assert_eq!((&job["backoffLimit"], &job["activeDeadlineSeconds"]), (&json!(2), &json!(3600)));
        let pod = &job["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], "snap");
        assert_eq!(pod["nodeSelector"], json!({"disk": "ssd"}));
        assert_eq!(pod["tolerations"], json!([{"key": "dedicated", "operator": "Exists"}]));
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        let c = &pod["containers"][0];
        assert_eq!(
            (&c["image"], &c["imagePullPolicy"]),
            (&json!("registry.example.com/kubesnap:dev"), &json!("Always"))
        );
        assert_eq!(c["command"], json!([BINARY]));
        assert_eq!(c["resources"], json!({"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}}));
        assert_eq!(c["envFrom"], json!([{"secretRef": {"name": "s3-creds"}}]));
        assert_eq!(
            c["env"][1],
            json!({"name": "KUBESNAP_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "pw", "key": "password"}}})
        );
        assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
        // Defaults: the operator's image, the default service account, Forbid, no time zone.
        let plain = desired_cron_job(&schedule(base()), &repo(), &defaults());
        assert_eq!(plain["spec"]["suspend"], false);
        assert_eq!(plain["spec"]["concurrencyPolicy"], "Forbid");
        assert!(plain["spec"].get("timeZone").is_none());
        let pod = &plain["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(
            (&pod["serviceAccountName"], &pod["containers"][0]["image"]),
            (&json!(DEFAULT_SERVICE_ACCOUNT), &json!(IMAGE))
        );
        // The result must be a CronJob as Kubernetes types it.
        let typed: k8s_openapi::api::batch::v1::CronJob = serde_json::from_value(cj).expect("a CronJob");
        assert_eq!(typed.spec.schedule, "0 2 * * *");
    }

    #[test]
    fn invalid_schedules_say_what_is_wrong() {
        let with = |f: &dyn Fn(&mut SnapshotScheduleSpec)| {
            let mut spec = base();
            f(&mut spec);
            validate(&schedule(spec), &defaults()).err().map(|e| e.reason)
        };
        type Edit<'a> = &'a dyn Fn(&mut SnapshotScheduleSpec);
        let table: Vec<(Edit, Option<&str>)> = vec![
            (&|_| {}, None),
            (&|s| s.schedule = "@daily".into(), None),
            (&|s| s.schedule = "*/15 9-17 * JAN-JUN MON-FRI".into(), None),
            (&|s| s.schedule = "0 2 * *".into(), Some("InvalidSchedule")),
            (&|s| s.schedule = "0 2 * * * *".into(), Some("InvalidSchedule")),
            (&|s| s.schedule = "61 2 * * *".into(), Some("InvalidSchedule")),
            (&|s| s.schedule = "0 2 L * *".into(), Some("InvalidSchedule")),
            (&|s| s.schedule = "@fortnightly".into(), Some("InvalidSchedule")),
            (&|s| s.time_zone = Some("Mars/Olympus".into()), Some("InvalidTimeZone")),
            (&|s| s.time_zone = Some("Europe/Paris".into()), None),
            (&|s| s.repository = "".into(), Some("RepositoryNotFound")),
            (&|s| s.job.image = Some("evil.example.com/x".into()), Some("ImageNotAllowed")),
            (&|s| s.job.image = Some("registry.example.com/kubesnap:1".into()), None),
            (&|s| s.job.service_account_name = Some("cluster-admin-sa".into()), Some("ServiceAccountNotAllowed")),
            (&|s| s.job.service_account_name = Some("snap".into()), None),
            (&|s| s.job.service_account_name = Some(DEFAULT_SERVICE_ACCOUNT.into()), None),
            (
                &|s| {
                    s.scope.application =
                        Some(Application { resource: "web".into(), namespace: "shop".into(), with_references: false })
                },
                Some("InvalidScope"),
            ),
            (
                &|s| {
                    s.scope.application = Some(Application {
                        resource: "deploy/web".into(),
                        namespace: "shop".into(),
                        with_references: false,
                    });
                    s.scope.namespaces = vec!["x".into()];
                },
                Some("InvalidScope"),
            ),
            (
                &|s| s.retention = Some(Retention { keep_within: Some("soon".into()), ..Default::default() }),
                Some("InvalidRetention"),
            ),
        ];
        for (i, (f, want)) in table.into_iter().enumerate() {
            assert_eq!(with(f), want, "case {i}");
        }
    }

    #[test]
    fn next_runs_and_intervals() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let daily = parse_timing("0 2 * * *", None).unwrap();
        assert_eq!(daily.next_after(t("2026-11-25T21:00:00Z")), Some(t("2026-11-26T02:00:00Z")));
        assert_eq!(daily.interval_seconds(t("2026-11-25T21:00:00Z")), Some(86400));
        let paris = parse_timing("0 2 * * *", Some("Europe/Paris")).unwrap();
        assert_eq!(paris.next_after(t("2026-11-25T21:00:00Z")), Some(t("2026-11-26T01:00:00Z")));
        // A weekday schedule is overdue after its weekend gap, not its weekday gap.
        let weekdays = parse_timing("0 2 * * 1-5", None).unwrap();
        assert_eq!(weekdays.interval_seconds(t("2026-11-25T21:00:00Z")), Some(3 * 86400));
        assert_eq!(parse_timing("@hourly", None).unwrap().interval_seconds(t("2026-11-25T21:00:00Z")), Some(3600));
    }

    #[test]
    fn names_stay_within_kubernetes_limits() {
        let mut s = schedule(base());
        s.metadata.name = Some("a".repeat(100));
        assert!(cron_job_name(&s).len() <= 52);
        assert!(label_value(&s).len() <= 63);
        let job = run_now_job(&s, &repo(), &defaults(), "2026-11-25T10:00:00Z");
        assert!(job["metadata"]["name"].as_str().unwrap().len() <= 63);
        assert_ne!(cron_job_name(&s), {
            s.metadata.name = Some(format!("{}b", "a".repeat(99)));
            cron_job_name(&s)
        });
    }

    #[test]
    fn finished_jobs_give_their_result() {
        let pod = |code: i64, report: Value| {
            json!({"status": {"containerStatuses": [{"name": CONTAINER, "state": {"terminated": {
                "exitCode": code, "finishedAt": "2026-11-25T02:01:00Z", "message": report.to_string()}}}]}})
        };
        let done = json!({"metadata": {"name": "j1"}, "status": {"startTime": "2026-11-25T02:00:00Z",
            "completionTime": "2026-11-25T02:01:00Z", "succeeded": 1,
            "conditions": [{"type": "Complete", "status": "True"}]}});
        let failed = json!({"metadata": {"name": "j2"}, "status": {"startTime": "2026-11-25T02:00:00Z", "failed": 2,
            "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                            "message": "Job has reached the specified backoff limit", "lastTransitionTime": "2026-11-25T02:05:00Z"}]}});
        let running = json!({"metadata": {"name": "j3"}, "status": {"startTime": "2026-11-25T02:00:00Z", "active": 1}});
        let ok = run_of(
            &done,
            &[pod(0, json!({"exitCode": 0, "report": {"id": "abc", "objects": 12, "bytes_added": 345}}))],
        )
        .unwrap();
        assert_eq!(
            (ok.result.as_str(), ok.snapshot_id.as_deref(), ok.objects, ok.bytes_added),
            ("Succeeded", Some("abc"), Some(12), Some(345))
        );
        assert_eq!(ok.end_time.as_deref(), Some("2026-11-25T02:01:00Z"));
        let partial = run_of(
            &failed,
            &[pod(
                10,
                json!({"exitCode": 10, "report": {"id": "d", "objects": 3, "bytes_added": 1, "skipped": [{}, {}]}}),
            )],
        )
        .unwrap();
        assert_eq!(partial.result, "Partial");
        assert!(partial.message.unwrap().contains("2 type(s)"));
        let err = run_of(
            &failed,
            &[pod(
                4,
                json!({"exitCode": 4, "error": "wrong password: none of the repository's 1 key file(s) opens with it"}),
            )],
        )
        .unwrap();
        assert_eq!(err.result, "Failed");
        assert!(err.message.as_deref().unwrap().starts_with("wrong password"));
        let no_report = run_of(&failed, &[]).unwrap();
        assert_eq!(
            no_report.message.as_deref(),
            Some("BackoffLimitExceeded: Job has reached the specified backoff limit")
        );
        assert_eq!(no_report.end_time.as_deref(), Some("2026-11-25T02:05:00Z"));
        assert!(run_of(&running, &[]).is_none());
        let runs = merge_runs(std::slice::from_ref(&ok), vec![err.clone(), ok.clone()]);
        assert_eq!(runs.len(), 2);
    }
}

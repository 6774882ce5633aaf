//! The custom resources, `kubesnap.io/v1alpha1`: `Repository` and `SnapshotSchedule`. Their
//! CRDs are generated from these types (`kubesnap operator crds`); field names are a contract
//! shared with the examples in `deploy/` and the README.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A kubesnap repository: where snapshots are stored and how to open it.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubesnap.io",
    version = "v1alpha1",
    kind = "Repository",
    namespaced,
    shortname = "ksrepo",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RepositorySpec {
    /// The location: `s3://BUCKET/PREFIX`, `gs://BUCKET/PREFIX`, `az://CONTAINER/PREFIX` or a path.
    pub url: String,
    /// Store options (`-o KEY=VALUE`): object_store keys such as `endpoint`, `region`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// A Secret in the same namespace whose keys become the Job's environment (the cloud's
    /// credentials: `AWS_ACCESS_KEY_ID`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_KEY`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretRef>,
    /// The key of a Secret in the same namespace holding the repository's password.
    pub password_secret_ref: SecretKeyRef,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretRef {
    pub name: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// Snapshots of this cluster on a schedule, into a Repository of the same namespace.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "kubesnap.io",
    version = "v1alpha1",
    kind = "SnapshotSchedule",
    namespaced,
    shortname = "kssched",
    status = "SnapshotScheduleStatus",
    printcolumn = r#"{"name":"Schedule","type":"string","jsonPath":".spec.schedule"}"#,
    printcolumn = r#"{"name":"Suspend","type":"boolean","jsonPath":".spec.suspend"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Last success","type":"date","jsonPath":".status.lastSuccessfulTime"}"#,
    printcolumn = r#"{"name":"Next run","type":"date","jsonPath":".status.nextRunTime"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotScheduleSpec {
    /// A cron schedule of five fields (`0 2 * * *`), or `@hourly`, `@daily`, `@weekly`,
    /// `@monthly`, `@yearly`.
    pub schedule: String,
    /// The IANA time zone the schedule is read in (default: the controller manager's, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The name of a Repository in the same namespace.
    pub repository: String,
    /// The cluster name snapshots are recorded under (default: `<namespace>-<name>` of the
    /// schedule, so that two schedules never thin each other's snapshots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Tags of every snapshot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// What to snapshot (default: the whole cluster).
    #[serde(default)]
    pub scope: Scope,
    /// The retention policy applied after each successful run (none: keep everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Stop starting runs (the CronJob is suspended).
    #[serde(default)]
    pub suspend: bool,
    /// What to do when a run is due while the previous one still runs (default `Forbid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,
    /// A run that could not start this many seconds after its time is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_deadline_seconds: Option<i64>,
    /// Finished Jobs kept (default 3 and 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_jobs_history_limit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_jobs_history_limit: Option<i32>,
    /// The Job's pod settings.
    #[serde(default)]
    pub job: JobSettings,
}

/// What a run snapshots: the whole cluster (nothing set), some namespaces, or one
/// application, narrowed by the same filters as the CLI.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    /// Only these namespaces (and their Namespace objects).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_namespaces: Vec<String>,
    /// One application and what it owns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<Application>,
    /// A label selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Only these types (kubectl names: `deployments`, `cm`, `certificates.cert-manager.io`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include_resources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_resources: Vec<String>,
    /// Cluster-scoped types (default: on for the whole cluster, off otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_cluster_resources: Option<bool>,
    /// Keep Secrets' keys with empty values.
    #[serde(default)]
    pub redact_secrets: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    /// `TYPE/NAME`, e.g. `deployment/web`.
    pub resource: String,
    pub namespace: String,
    /// Also the ConfigMaps, Secrets, ServiceAccount and claims it uses and the Services,
    /// PodDisruptionBudgets and autoscalers aimed at it.
    #[serde(default)]
    pub with_references: bool,
}

/// restic's policy (`kubesnap forget --keep-*`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<i32>,
    /// Keep everything this recent, e.g. `7d`, `36h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ConcurrencyPolicy {
    Allow,
    #[default]
    Forbid,
    Replace,
}

/// The snapshot Job's pod.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobSettings {
    /// The kubesnap image (default: the operator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<String>,
    /// Default `kubesnap-snapshot`; another name only if the operator allows it
    /// (`--allowed-service-account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Retries of a failed run (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    /// A run is stopped after this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<i64>,
}

/// Compute resources, as a container's `resources` (quantities as strings: `100m`, `1Gi`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

/// A pod toleration, as in a pod spec.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// What the operator observed and did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotScheduleStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: `True` when the CronJob is in place (reason `Scheduled` or `Suspended`),
    /// `False` with the reason it is not (`InvalidSchedule`, `InvalidTimeZone`,
    /// `RepositoryNotFound`, `SecretNotFound`, `ImageNotAllowed`, `ServiceAccountNotAllowed`,
    /// `InvalidScope`, `InvalidRetention`, `ApplyFailed`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_job_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// The `kubesnap.io/run-now` annotation value last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_now: Option<String>,
    /// The latest runs, newest first (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_runs: Vec<Run>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    pub reason: String,
    pub message: String,
    pub last_transition_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One finished run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub job_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// `Succeeded`, `Partial` (committed, some type incomplete) or `Failed`.
    pub result: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_added: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The CRDs as one YAML stream.
pub fn crds_yaml() -> String {
    use kube::CustomResourceExt;
    let docs = [Repository::crd(), SnapshotSchedule::crd()];
    docs.iter()
        .map(|c| crate::k8s::yaml::to_yaml(&serde_json::to_value(c).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join("---\n")
}

//! The command-line interface: parsing (clap), reading the password, printing. Every command
//! is a thin call into `kubesnap::ops`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use kubesnap::crypto::KdfParams;
use kubesnap::ops::{self, select, Progress};
use kubesnap::repo::{OpenOptions, Repository};
use kubesnap::timeutil;

/// Keeps the history of a Kubernetes cluster's resources in an encrypted, deduplicating
/// repository.
#[derive(Parser)]
#[command(name = "kubesnap", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Repository: a folder path, file://PATH, s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or
    /// az://CONTAINER/PREFIX.
    #[arg(short = 'r', long, env = "KUBESNAP_REPOSITORY", global = true)]
    repo: Option<String>,
    /// A store option, KEY=VALUE (repeatable): object_store's keys, such as endpoint, region,
    /// allow_http, virtual_hosted_style_request, access_key_id.
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE")]
    options: Vec<String>,
    /// Read the password from this file (first line). Otherwise KUBESNAP_PASSWORD.
    #[arg(long, env = "KUBESNAP_PASSWORD_FILE", global = true)]
    password_file: Option<PathBuf>,
    /// Run this command (through sh -c) and read the password from its output.
    #[arg(long, env = "KUBESNAP_PASSWORD_COMMAND", global = true)]
    password_command: Option<String>,
    /// Folder of the local cache (default: ~/.cache/kubesnap).
    #[arg(long, env = "KUBESNAP_CACHE_DIR", global = true)]
    cache_dir: Option<PathBuf>,
    /// Use no cache on disk (for read-only filesystems).
    #[arg(long, global = true)]
    no_cache: bool,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Print no progress.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// After the command, print on stderr how many stored objects it read and wrote.
    #[arg(long, global = true)]
    io_stats: bool,
}

fn io_stats(g: &Global, repo: &Repository) {
    if g.io_stats {
        let (reads, bytes, writes) = repo.io_counts();
        eprintln!("io: {reads} reads of stored objects ({bytes} bytes), {writes} objects written");
    }
}

#[derive(Subcommand)]
enum Command {
    /// Create a repository.
    Init(InitArgs),
    /// Take a snapshot of a cluster (or of a dump folder with --from-dir).
    Snapshot(Box<SnapshotArgs>),
    /// List or show snapshots.
    #[command(subcommand)]
    Snapshots(SnapshotsCommand),
    /// List the resources of a snapshot.
    Ls(LsArgs),
    /// Show what changed between two snapshots, or between a snapshot and the live cluster (--live).
    Diff(DiffArgs),
    /// Show every snapshot in which a resource appeared, changed or vanished.
    Log(LogArgs),
    /// Put resources back as they were in a snapshot: into the cluster (--apply), a folder or stdout.
    Restore(RestoreArgs),
    /// Verify the repository.
    Check(CheckArgs),
    /// Sizes, deduplication and compression.
    Stats(StatsArgs),
    /// Remove snapshots by name or by a retention policy (data stays until `prune`).
    Forget(ForgetArgs),
    /// Delete data no snapshot references; safe while snapshots are being written.
    Prune(PruneArgs),
    /// The passwords (key files) that open the repository.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Rewrite snapshots without some resources (then `prune` removes their data).
    Rewrite(RewriteArgs),
    /// Copy snapshots into another repository (re-encrypted under its key).
    Copy(CopyArgs),
    /// The operator: scheduled snapshots from SnapshotSchedule resources.
    #[command(subcommand)]
    Operator(OperatorCommand),
}

#[derive(Args)]
struct RewriteArgs {
    /// Snapshots to rewrite (default: all, of --cluster when given).
    snapshots: Vec<String>,
    /// What to leave out: TYPE/NAME (e.g. secret/leaked) or a whole TYPE (repeatable).
    #[arg(long, required = true)]
    exclude: Vec<String>,
    /// Only in this namespace.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    #[arg(long)]
    cluster: Option<String>,
    /// Show what would be removed; change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args)]
struct CopyArgs {
    /// Snapshots to copy (default: all, of --cluster when given).
    snapshots: Vec<String>,
    /// The destination repository (initialised with `kubesnap init`).
    #[arg(long)]
    to: String,
    /// A store option of the destination, KEY=VALUE (repeatable).
    #[arg(long = "to-option", value_name = "KEY=VALUE")]
    to_options: Vec<String>,
    /// The destination's password file (first line). Otherwise KUBESNAP_TO_PASSWORD.
    #[arg(long, env = "KUBESNAP_TO_PASSWORD_FILE")]
    to_password_file: Option<PathBuf>,
    #[arg(long)]
    cluster: Option<String>,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Key files, oldest first; `*` marks the one in use.
    List,
    /// Add a key for another password (read from --new-password-file or KUBESNAP_NEW_PASSWORD).
    Add(NewKeyArgs),
    /// Remove a key file by id or unique prefix (not the last one, not the one in use).
    Remove { id: String },
    /// Change the password in use: add a key for the new password, remove the current one.
    Passwd(NewKeyArgs),
}

#[derive(Args)]
struct NewKeyArgs {
    /// Read the new password from this file (first line). Otherwise KUBESNAP_NEW_PASSWORD.
    #[arg(long, env = "KUBESNAP_NEW_PASSWORD_FILE")]
    new_password_file: Option<PathBuf>,
    #[command(flatten)]
    kdf: KdfArgs,
}

/// Argon2id parameters of a new key file.
#[derive(Args)]
struct KdfArgs {
    /// Argon2id memory in KiB (default 19456, Argon2's recommendation).
    #[arg(long, default_value_t = KdfParams::default().m_cost)]
    kdf_memory: u32,
    /// Argon2id passes.
    #[arg(long, default_value_t = KdfParams::default().t_cost)]
    kdf_iterations: u32,
    /// Argon2id lanes.
    #[arg(long, default_value_t = KdfParams::default().p_cost)]
    kdf_parallelism: u32,
}

impl KdfArgs {
    fn params(&self) -> KdfParams {
        KdfParams { m_cost: self.kdf_memory, t_cost: self.kdf_iterations, p_cost: self.kdf_parallelism }
    }
}

impl NewKeyArgs {
    fn password(&self) -> Result<Vec<u8>> {
        if let Some(f) = &self.new_password_file {
            return password_file(f);
        }
        if let Some(p) = std::env::var_os("KUBESNAP_NEW_PASSWORD") {
            return Ok(p.into_encoded_bytes());
        }
        bail!(kubesnap::Error::Usage("no new password: give --new-password-file or set KUBESNAP_NEW_PASSWORD".into()))
    }
}

/// A retention policy (restic's semantics; see `kubesnap forget --help`).
#[derive(Args, Clone, Default)]
struct KeepArgs {
    /// Keep the N newest snapshots (-1: all).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_last: Option<i64>,
    /// Keep the newest snapshot of each of the N newest hours that have one.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_hourly: Option<i64>,
    /// Keep the newest snapshot of each of the N newest days that have one.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_daily: Option<i64>,
    /// Keep the newest snapshot of each of the N newest ISO weeks that have one.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_weekly: Option<i64>,
    /// Keep the newest snapshot of each of the N newest months that have one.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_monthly: Option<i64>,
    /// Keep the newest snapshot of each of the N newest years that have one.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    keep_yearly: Option<i64>,
    /// Keep every snapshot younger than this (e.g. 7d, 36h) relative to the newest one.
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "TAG")]
    keep_tags: Vec<String>,
    /// Time zone of the hour/day/week/month/year buckets: UTC (default) or an offset like +02:00.
    #[arg(long, default_value = "UTC")]
    time_zone: String,
}

impl KeepArgs {
    fn policy(&self) -> Result<(ops::retention::Policy, chrono::FixedOffset)> {
        let within = match &self.keep_within {
            Some(d) => Some(
                timeutil::parse_age(d)
                    .ok_or_else(|| {
                        kubesnap::Error::Usage(format!("--keep-within {d:?}: expected a duration such as 7d or 36h"))
                    })?
                    .num_seconds(),
            ),
            None => None,
        };
        let zone = ops::retention::parse_zone(&self.time_zone).ok_or_else(|| {
            kubesnap::Error::Usage(format!(
                "--time-zone {:?}: expected UTC or an offset such as +02:00",
                self.time_zone
            ))
        })?;
        for (flag, v) in [
            ("--keep-last", self.keep_last),
            ("--keep-hourly", self.keep_hourly),
            ("--keep-daily", self.keep_daily),
            ("--keep-weekly", self.keep_weekly),
            ("--keep-monthly", self.keep_monthly),
            ("--keep-yearly", self.keep_yearly),
        ] {
            if v.is_some_and(|n| n < -1) {
                return Err(kubesnap::Error::Usage(format!("{flag}: expected a count, or -1 for all")).into());
            }
        }
        Ok((
            ops::retention::Policy {
                last: self.keep_last.unwrap_or(0),
                hourly: self.keep_hourly.unwrap_or(0),
                daily: self.keep_daily.unwrap_or(0),
                weekly: self.keep_weekly.unwrap_or(0),
                monthly: self.keep_monthly.unwrap_or(0),
                yearly: self.keep_yearly.unwrap_or(0),
                within,
                tags: self.keep_tags.clone(),
            },
            zone,
        ))
    }
}

#[derive(Args)]
struct ForgetArgs {
    /// Snapshots to forget by name (id, prefix, latest~N).
    snapshots: Vec<String>,
    #[command(flatten)]
    keep: KeepArgs,
    /// Only this cluster's snapshots.
    #[arg(long)]
    cluster: Option<String>,
    /// Group snapshots by `cluster` (default) or `cluster,tags`.
    #[arg(long, default_value = "cluster")]
    group_by: String,
    /// Show what would be forgotten; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Prune afterwards.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_opts: PruneOpts,
}

#[derive(Args)]
struct PruneOpts {
    /// Repack a pack when more than this percentage of it is unreferenced.
    #[arg(long, default_value_t = 10.0)]
    max_unused: f64,
    /// Remove never-committed leftovers only when older than this (a writer may still commit
    /// younger ones).
    #[arg(long, default_value = "24h")]
    leftover_age: String,
}

impl PruneOpts {
    fn options(&self, dry_run: bool) -> Result<ops::prune::PruneOptions> {
        let age = timeutil::parse_age(&self.leftover_age).and_then(|d| d.to_std().ok()).ok_or_else(|| {
            kubesnap::Error::Usage(format!("--leftover-age {:?}: expected a duration such as 24h", self.leftover_age))
        })?;
        if !(0.0..=100.0).contains(&self.max_unused) {
            return Err(kubesnap::Error::Usage("--max-unused: expected a percentage from 0 to 100".into()).into());
        }
        Ok(ops::prune::PruneOptions { max_unused_percent: self.max_unused, dry_run, leftover_age: age })
    }
}

#[derive(Args)]
struct PruneArgs {
    /// Show what would be removed; change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    opts: PruneOpts,
}

fn print_forget(out: &mut impl Write, r: &ops::forget::ForgetReport) -> Result<()> {
    for g in &r.groups {
        match &g.tags {
            Some(t) => writeln!(out, "cluster {} tags [{}]:", g.cluster, t.join(","))?,
            None => writeln!(out, "cluster {}:", g.cluster)?,
        }
        for s in g.snapshots.iter().rev() {
            writeln!(
                out,
                "  {} {:<10} {:<22} {}",
                if s.keep { "keep  " } else { "forget" },
                s.id.short(),
                s.time,
                s.reasons.join(", ")
            )?;
        }
    }
    let verb = if r.dry_run { "would forget" } else { "forgot" };
    writeln!(out, "{verb} {} snapshot(s)", r.removed.len())?;
    Ok(())
}

fn print_prune(out: &mut impl Write, r: &ops::prune::PruneReport) -> Result<()> {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    writeln!(
        out,
        "{verb} {} unused and {} repacked packs, {} leftover packs, {} leftover index files, {} leftover manifests: {} bytes (wrote {})",
        r.packs_removed,
        r.packs_repacked,
        r.leftover_packs,
        r.leftover_index_files,
        r.leftover_manifests,
        r.bytes_removed,
        r.bytes_written
    )?;
    if r.young_leftovers > 0 {
        writeln!(out, "{} unreferenced files are younger than --leftover-age and were kept", r.young_leftovers)?;
    }
    Ok(())
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Print the CustomResourceDefinitions (Repository, SnapshotSchedule) as YAML.
    Crds,
    /// Run the controller (in the cluster, or against --kubeconfig).
    Run(Box<OperatorRunArgs>),
}

#[derive(Args)]
struct OperatorRunArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Watch only this namespace (default: all).
    #[arg(long)]
    namespace: Option<String>,
    /// Where /metrics and /healthz are served.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: String,
    /// The image of snapshot Jobs whose schedule names none (the operator's own).
    #[arg(long, env = "KUBESNAP_IMAGE", default_value = "ghcr.io/kubesnap/kubesnap:0.1.0")]
    image: String,
    /// An image prefix schedules may name in job.image (repeatable; default: only --image).
    #[arg(long = "allowed-image", value_name = "PREFIX")]
    allowed_images: Vec<String>,
    /// A service account schedules may name in job.serviceAccountName besides
    /// kubesnap-snapshot (repeatable).
    #[arg(long = "allowed-service-account", value_name = "NAME")]
    allowed_service_accounts: Vec<String>,
    /// The namespace of the leader lease (default: POD_NAMESPACE).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    #[arg(long, default_value = "kubesnap-operator")]
    lease_name: String,
    /// This replica's identity in the lease (default: POD_NAME, else the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Act without leader election (one replica only).
    #[arg(long)]
    no_leader_election: bool,
    /// How long a leader's lease lasts without renewal (renewed every fifth of it).
    #[arg(long, default_value_t = 15, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    lease_duration: u64,
}

#[derive(Args)]
struct InitArgs {
    #[command(flatten)]
    kdf: KdfArgs,
    /// zstd level of stored frames (1-22; default 15). Fixed for the repository's life.
    #[arg(long, hide = true)]
    zstd_level: Option<i32>,
    /// Target uncompressed size of a frame, in bytes. Fixed for the repository's life.
    #[arg(long, hide = true)]
    frame_target: Option<u32>,
}

#[derive(Args)]
struct SnapshotArgs {
    /// Read objects from this dump folder (.yaml, .yml, .json files below it) instead of a
    /// cluster.
    #[arg(long)]
    from_dir: Option<PathBuf>,
    /// The cluster the snapshot belongs to (default: the kube context's name; `default` for
    /// --from-dir).
    #[arg(long)]
    cluster: Option<String>,
    /// A tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// The snapshot's time (RFC 3339 or an age like 2h); default: now. Only with --from-dir.
    #[arg(long, requires = "from_dir")]
    time: Option<String>,
    /// Skip documents that are not named Kubernetes objects instead of failing.
    #[arg(long, requires = "from_dir")]
    skip_invalid: bool,
    #[command(flatten)]
    live: LiveArgs,
    /// After a successful snapshot, forget this cluster's snapshots the policy does not keep.
    #[command(flatten)]
    keep: KeepArgs,
    /// Also write `{"exitCode", "report"}` (or `{"exitCode", "error"}`) as JSON to this file,
    /// e.g. /dev/termination-log in a Job, whose controller reads it back.
    #[arg(long, value_name = "PATH")]
    report_file: Option<PathBuf>,
}

/// Where the cluster is and what to take from it.
#[derive(Args)]
#[group(id = "live_source", multiple = true, conflicts_with = "from_dir")]
struct LiveArgs {
    /// The kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the pod's service account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    context: Option<String>,
    /// Only this namespace (repeatable, or comma-separated).
    #[arg(short = 'n', long = "namespace")]
    namespaces: Vec<String>,
    /// Leave out this namespace (repeatable, or comma-separated).
    #[arg(long = "exclude-namespace")]
    exclude_namespaces: Vec<String>,
    /// One application: TYPE/NAME (e.g. deployment/web) and what it owns, in one namespace.
    #[arg(long)]
    app: Option<String>,
    /// With --app: also the ConfigMaps, Secrets, ServiceAccount and PVCs it refers to, and the
    /// Services, PodDisruptionBudgets and autoscalers aimed at it.
    #[arg(long, requires = "app")]
    with_references: bool,
    /// Only objects matching this label selector (e.g. app=web,tier!=cache).
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Only these types, as kubectl names them (repeatable, or comma-separated). Also brings
    /// back a type excluded by default (events, leases, metrics).
    #[arg(long = "include-resource")]
    include_resources: Vec<String>,
    /// Leave out these types (repeatable, or comma-separated), e.g. secrets.
    #[arg(long = "exclude-resource")]
    exclude_resources: Vec<String>,
    /// Take cluster-scoped types (default: true for the whole cluster, false with -n or --app).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    include_cluster_resources: Option<bool>,
    /// Store Secrets' keys but not their values.
    #[arg(long)]
    redact_secrets: bool,
    /// Objects per list request.
    #[arg(long, default_value_t = 500)]
    page_size: u32,
    /// List requests in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Attempts per request before a transient failure (429, 5xx, a lost connection) counts.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    retries: u32,
    /// Fail (committing nothing) when a type cannot be listed completely, instead of committing
    /// a snapshot recorded as partial (exit code 10).
    #[arg(long)]
    no_partial: bool,
}

#[derive(Subcommand)]
enum SnapshotsCommand {
    /// Snapshots, oldest first.
    List {
        #[arg(long)]
        cluster: Option<String>,
        /// Only snapshots with this tag (repeatable: all of them).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// One snapshot's manifest.
    Show {
        snapshot: String,
        #[arg(long)]
        cluster: Option<String>,
    },
}

#[derive(Args)]
struct Scope {
    /// Only this namespace.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Only this resource type (deploy, deployments.apps, Certificate.cert-manager.io...).
    #[arg(long)]
    kind: Option<String>,
    /// The cluster, where the repository holds several.
    #[arg(long)]
    cluster: Option<String>,
}

#[derive(Args)]
struct LsArgs {
    snapshot: String,
    #[command(flatten)]
    scope: Scope,
}

#[derive(Args)]
struct DiffArgs {
    /// A B (two snapshots); with --live, SNAP then RESOURCE... (TYPE/NAME).
    #[arg(required = true)]
    args: Vec<String>,
    /// Compare SNAP with the live cluster (its desired state, as restore would apply it).
    #[arg(long)]
    live: bool,
    #[command(flatten)]
    target: TargetArgs,
    /// With --live: also objects a controller owns (Pods of a ReplicaSet...).
    #[arg(long, requires = "live")]
    include_owned: bool,
    #[command(flatten)]
    scope: Scope,
    /// Field-level changes of each modified resource.
    #[arg(short = 'p', long)]
    patch: bool,
    /// Count changes of server-owned fields (status, resourceVersion...) too.
    #[arg(long)]
    server_fields: bool,
    /// Show Secret values in field-level changes.
    #[arg(long)]
    show_secrets: bool,
}

#[derive(Args)]
struct LogArgs {
    /// TYPE/NAME, e.g. deployment/web.
    resource: String,
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    #[arg(long)]
    cluster: Option<String>,
    #[arg(short = 'p', long)]
    patch: bool,
    #[arg(long)]
    server_fields: bool,
    #[arg(long)]
    show_secrets: bool,
}

#[derive(Args)]
struct RestoreArgs {
    /// SNAP then RESOURCE... (TYPE/NAME); with --at, only RESOURCE...
    args: Vec<String>,
    /// The newest snapshot at or before this time (RFC 3339 or an age like 36h).
    #[arg(long)]
    at: Option<String>,
    #[command(flatten)]
    scope: Scope,
    /// Write one file per resource under this folder.
    #[arg(long, conflicts_with = "stdout")]
    to_dir: Option<PathBuf>,
    /// Write a YAML stream on standard output.
    #[arg(long)]
    stdout: bool,
    /// Include server-owned fields (status, uid, resourceVersion...).
    #[arg(long, conflicts_with_all = ["apply", "clean"])]
    server_fields: bool,
    /// With --to-dir/--stdout: the clean-up restore --apply does (no cluster addresses, uids,
    /// node names, last-applied annotations...), ready for `kubectl apply`.
    #[arg(long)]
    clean: bool,
    /// Apply to the cluster (server-side apply, field manager `kubesnap`), in dependency order.
    #[arg(long, conflicts_with_all = ["to_dir", "stdout"])]
    apply: bool,
    /// With --apply: the server's dry run; print what would be created or changed, change nothing.
    #[arg(long, requires = "apply")]
    dry_run: bool,
    /// With --apply: objects that exist already are left alone (skip) or applied over (update).
    #[arg(long, value_enum, default_value_t = ExistingArg::Skip, requires = "apply")]
    existing: ExistingArg,
    /// With --apply: take fields that another field manager owns.
    #[arg(long, requires = "apply")]
    force_conflicts: bool,
    /// With --apply: also objects a controller owns (they are recreated by it otherwise).
    #[arg(long, requires = "apply")]
    include_owned: bool,
    /// Move namespace OLD to NEW, and the references that name it (repeatable).
    #[arg(long, value_name = "OLD=NEW")]
    namespace_map: Vec<String>,
    /// Keep spec.volumeName of PersistentVolumeClaims.
    #[arg(long)]
    keep_volume_names: bool,
    /// Show Secret values in the dry run's field changes.
    #[arg(long)]
    show_secrets: bool,
    #[command(flatten)]
    target: TargetArgs,
}

/// The cluster to restore into or compare with.
#[derive(Args)]
struct TargetArgs {
    /// The kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the pod's service account).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (default: its current context).
    #[arg(long)]
    context: Option<String>,
    /// Attempts per request before a transient failure (429, 5xx, a lost connection) counts.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..))]
    retries: u32,
}

impl TargetArgs {
    fn connect(&self) -> kubesnap::k8s::cluster::ConnectOptions {
        kubesnap::k8s::cluster::ConnectOptions { kubeconfig: self.kubeconfig.clone(), context: self.context.clone() }
    }

    fn retry(&self) -> Option<kubesnap::k8s::cluster::RetryPolicy> {
        Some(kubesnap::k8s::cluster::RetryPolicy { attempts: self.retries, ..Default::default() })
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExistingArg {
    Skip,
    Update,
}

#[derive(Args)]
struct CheckArgs {
    /// Also read every pack and verify every blob.
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Read and verify some packs only: a percentage (10%: a random tenth each run) or a part
    /// K/N (run 1/7 to 7/7 on seven days to read everything once a week).
    #[arg(long, value_name = "N% | K/N")]
    read_data_subset: Option<String>,
}

#[derive(Args)]
struct StatsArgs {
    snapshot: Option<String>,
    #[arg(long)]
    cluster: Option<String>,
}

/// Progress bars on a terminal; nothing when piped or quiet.
struct Bars {
    bar: Option<indicatif::ProgressBar>,
    enabled: bool,
}

impl Bars {
    fn new(quiet: bool) -> Bars {
        Bars { bar: None, enabled: !quiet && std::io::stderr().is_terminal() }
    }
}

// The bar lives behind a Mutex so that progress can be reported from worker threads.
struct SharedBars(std::sync::Mutex<Bars>);

impl Progress for SharedBars {
    fn start(&self, what: &str, total: u64) {
        if let Ok(mut b) = self.0.lock() {
            if !b.enabled {
                return;
            }
            let bar = indicatif::ProgressBar::new(total);
            // Without a known total (objects of a live cluster), a count and a rate.
            let template = if total == 0 {
                "{msg:>18} {spinner} {pos} ({per_sec})"
            } else {
                "{msg:>18} [{bar:30}] {pos}/{len} ({eta})"
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(what.to_owned());
            b.bar = Some(bar);
        }
    }
    fn advance(&self, n: u64) {
        if let Ok(b) = self.0.lock() {
            if let Some(bar) = &b.bar {
                bar.inc(n);
            }
        }
    }
    fn finish(&self) {
        if let Ok(mut b) = self.0.lock() {
            if let Some(bar) = b.bar.take() {
                bar.finish_and_clear();
            }
        }
    }
    fn warn(&self, message: &str) {
        if let Ok(b) = self.0.lock() {
            match &b.bar {
                Some(bar) => bar.suspend(|| eprintln!("warning: {message}")),
                None => eprintln!("warning: {message}"),
            }
        }
    }
}

/// A password is the first line of what holds it (without its line ending).
fn first_line(bytes: &[u8]) -> Vec<u8> {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line).to_vec()
}

fn password_file(f: &std::path::Path) -> Result<Vec<u8>> {
    let text = std::fs::read(f).with_context(|| format!("cannot read the password file {}", f.display()))?;
    Ok(first_line(&text))
}

fn read_password(g: &Global) -> Result<Vec<u8>> {
    if let Some(f) = &g.password_file {
        return password_file(f);
    }
    if let Some(cmd) = &g.password_command {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| "cannot run the password command")?;
        if !out.status.success() {
            bail!("the password command failed ({})", out.status);
        }
        return Ok(first_line(&out.stdout));
    }
    if let Some(p) = std::env::var_os("KUBESNAP_PASSWORD") {
        return Ok(p.into_encoded_bytes());
    }
    bail!("no password: set KUBESNAP_PASSWORD, --password-file (KUBESNAP_PASSWORD_FILE) or --password-command")
}

fn backend(g: &Global) -> Result<Arc<dyn kubesnap::backend::Backend>> {
    let Some(url) = &g.repo else { bail!("no repository: give --repo or set KUBESNAP_REPOSITORY") };
    let mut options = Vec::new();
    for o in &g.options {
        let Some((k, v)) = o.split_once('=') else {
            bail!(kubesnap::Error::Usage(format!(
                "--option {o:?}: expected KEY=VALUE, e.g. endpoint=http://minio:9000"
            )))
        };
        options.push((k.trim().to_string(), v.to_string()));
    }
    Ok(kubesnap::backend::open_with(url, &options).map_err(kubesnap::Error::from)?)
}

fn open(g: &Global) -> Result<Repository> {
    open_with(g, g.no_cache)
}

/// `check` reads the store itself, never the cache's copies.
fn open_with(g: &Global, no_cache: bool) -> Result<Repository> {
    let password = read_password(g)?;
    let opts = OpenOptions { cache_dir: g.cache_dir.clone(), no_cache };
    Ok(Repository::open(backend(g)?, &password, &opts)?)
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    // A closed pipe surfaces as an io::Error, which main treats as a normal end.
    serde_json::to_writer_pretty(&mut out, v).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(())
}

/// The kubelet keeps at most 4096 bytes of a termination message: the report is cut to fit,
/// keeping its numbers (long lists of skipped types and long errors are shortened first).
const TERMINATION_LIMIT: usize = 4096;

fn termination_json(mut v: serde_json::Value) -> Vec<u8> {
    let fits = |v: &serde_json::Value| serde_json::to_vec(v).map(|b| b.len() <= TERMINATION_LIMIT).unwrap_or(false);
    if let Some(serde_json::Value::Array(skipped)) = v.pointer_mut("/report/skipped") {
        let total = skipped.len();
        while serde_json::to_vec(&skipped).map(|b| b.len()).unwrap_or(0) > TERMINATION_LIMIT / 2 && !skipped.is_empty()
        {
            skipped.pop();
        }
        let kept = skipped.len();
        if kept < total {
            v["report"]["skippedNotShown"] = serde_json::json!(total - kept);
        }
    }
    if !fits(&v) {
        if let Some(serde_json::Value::String(e)) = v.get_mut("error") {
            let cut: String = e.chars().take(2000).collect();
            *e = format!("{cut}…");
        }
    }
    if !fits(&v) {
        if let Some(r) = v.get_mut("report").and_then(serde_json::Value::as_object_mut) {
            r.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "id" | "time"
                        | "cluster"
                        | "objects"
                        | "added"
                        | "modified"
                        | "removed"
                        | "bytes_added"
                        | "partial"
                        | "retries"
                )
            });
        }
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "kubesnap".into())
}

fn print_diff(out: &mut impl Write, r: &ops::diff::DiffReport) -> Result<()> {
    for x in &r.added {
        writeln!(out, "+ {}", x.display())?;
    }
    for x in &r.removed {
        writeln!(out, "- {}", x.display())?;
    }
    match &r.changes {
        Some(changes) => {
            for c in changes {
                writeln!(out, "~ {}", c.resource.display())?;
                for f in &c.fields {
                    writeln!(out, "    {}", ops::fielddiff::format_change(f))?;
                }
            }
        }
        None => {
            for x in &r.modified {
                writeln!(out, "~ {}", x.display())?;
            }
        }
    }
    Ok(())
}

fn print_apply(out: &mut impl Write, r: &ops::apply::ApplyReport) -> Result<()> {
    for x in &r.results {
        let target = match &x.target_namespace {
            Some(ns) => format!(" -> namespace {ns}"),
            None => String::new(),
        };
        let reason = x.reason.as_deref().map(|s| format!(": {s}")).unwrap_or_default();
        writeln!(out, "{:<13} {}{target}{reason}", x.action.describe(r.dry_run), x.resource.display())?;
        for f in &x.changes {
            writeln!(out, "    {}", ops::fielddiff::format_change(f))?;
        }
    }
    Ok(())
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    Ok(timeutil::parse_input(s, timeutil::now())?)
}

/// The exit code of a snapshot that was committed but is partial (documented in the README).
pub const EXIT_PARTIAL: i32 = 10;
/// `diff --live` found differences (as `diff(1)` exits 1, but apart from the error codes).
pub const EXIT_DIFFERENT: i32 = 11;

/// `snapshot`, with its exit code and its JSON report.
fn snapshot_command(
    g: &Global,
    a: &SnapshotArgs,
    progress: &SharedBars,
    out: &mut impl Write,
) -> Result<(i32, serde_json::Value)> {
    let mut repo = open(g)?;
    let (r, live) = match &a.from_dir {
        Some(dir) => {
            let opts = ops::snapshot::SnapshotOptions {
                from_dir: dir.clone(),
                cluster: Some(a.cluster.clone().unwrap_or_else(|| ops::snapshot::DEFAULT_CLUSTER.into())),
                tags: a.tags.clone(),
                time: a.time.as_deref().map(parse_time).transpose()?,
                skip_invalid: a.skip_invalid,
            };
            (ops::snapshot::snapshot_dir(&mut repo, &opts, progress)?, None)
        }
        None => {
            let l = &a.live;
            let opts = ops::live::LiveSnapshotOptions {
                connect: kubesnap::k8s::cluster::ConnectOptions {
                    kubeconfig: l.kubeconfig.clone(),
                    context: l.context.clone(),
                },
                cluster: a.cluster.clone(),
                tags: a.tags.clone(),
                scope: ops::live::Scope {
                    namespaces: l.namespaces.clone(),
                    exclude_namespaces: l.exclude_namespaces.clone(),
                    app: l.app.clone(),
                    with_references: l.with_references,
                    selector: l.selector.clone(),
                    include_resources: l.include_resources.clone(),
                    exclude_resources: l.exclude_resources.clone(),
                    include_cluster_resources: l.include_cluster_resources,
                },
                redact_secrets: l.redact_secrets,
                list: kubesnap::k8s::cluster::ListOptions {
                    page_size: l.page_size.max(1),
                    concurrency: l.concurrency.max(1),
                },
                retry: Some(kubesnap::k8s::cluster::RetryPolicy { attempts: l.retries, ..Default::default() }),
                no_partial: l.no_partial,
            };
            let r = ops::live::snapshot_live(&mut repo, &opts, progress)?;
            (r.snapshot.clone(), Some(r))
        }
    };
    io_stats(g, &repo);
    let (policy, zone) = a.keep.policy()?;
    let partial = live.as_ref().is_some_and(|l| l.partial);
    if partial && !policy.is_empty() {
        eprintln!("warning: the snapshot is partial: retention was not applied");
    }
    let retention = if policy.is_empty() || partial {
        None
    } else {
        Some(ops::forget::forget(
            &mut repo,
            &ops::forget::ForgetOptions { policy, zone, cluster: Some(r.cluster.clone()), ..Default::default() },
        )?)
    };
    if let Some(f) = &retention {
        if !g.quiet && !g.json {
            eprintln!("retention: forgot {} snapshot(s) of {}", f.removed.len(), r.cluster);
        }
    }
    let report = match &live {
        Some(l) => serde_json::to_value(l)?,
        None => serde_json::to_value(&r)?,
    };
    if g.json {
        print_json(&report)?;
    } else {
        writeln!(out, "{}", r.id)?;
        if !g.quiet {
            eprintln!(
                "snapshot {} of {} at {}: {} objects, +{} -{} ~{}, {} bytes added",
                r.id.short(),
                r.cluster,
                r.time,
                r.objects,
                r.added,
                r.removed,
                r.modified,
                r.bytes_added
            );
            if let Some(l) = &live {
                eprintln!(
                    "{} types listed from {} ({}); {} retries, {} restarted lists",
                    l.types, l.context, l.server, l.retries, l.restarts
                );
            }
        }
    }
    if let Some(l) = &live {
        for s in &l.skipped {
            let name = if s.group.is_empty() { s.kind.clone() } else { format!("{}.{}", s.kind, s.group) };
            eprintln!("{}: {name}: {}", if s.partial { "partial" } else { "skipped" }, s.reason);
        }
        if l.partial {
            eprintln!("warning: the snapshot is partial: some types could not be listed completely");
            return Ok((EXIT_PARTIAL, report));
        }
    }
    Ok((0, report))
}

pub fn try_main() -> Result<i32> {
    let cli = Cli::parse();
    let g = &cli.global;
    let progress = SharedBars(std::sync::Mutex::new(Bars::new(g.quiet)));
    let mut out = std::io::stdout().lock();
    match &cli.command {
        Command::Operator(OperatorCommand::Crds) => {
            write!(out, "{}", kubesnap::operator::crd::crds_yaml())?;
        }
        Command::Operator(OperatorCommand::Run(a)) => {
            let lease = if a.no_leader_election {
                None
            } else {
                let Some(ns) = a.lease_namespace.clone() else {
                    bail!(kubesnap::Error::Usage(
                        "leader election needs --lease-namespace (or POD_NAMESPACE); --no-leader-election runs one replica alone".into()
                    ))
                };
                let identity = a.identity.clone().unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
                let mut cfg = kubesnap::operator::lease_config(ns, a.lease_name.clone(), identity);
                cfg.lease_duration = std::time::Duration::from_secs(a.lease_duration);
                cfg.renew = cfg.lease_duration / 5;
                Some(cfg)
            };
            kubesnap::operator::run(kubesnap::operator::OperatorOptions {
                connect: a.target.connect(),
                namespace: a.namespace.clone(),
                metrics_addr: a.metrics_addr.clone(),
                lease,
                defaults: kubesnap::operator::schedule::Defaults {
                    image: a.image.clone(),
                    allowed_images: a.allowed_images.clone(),
                    allowed_service_accounts: a.allowed_service_accounts.clone(),
                },
            })?;
        }
        Command::Init(a) => {
            let password = read_password(g)?;
            if password.is_empty() {
                bail!("the password is empty");
            }
            let kdf = a.kdf.params();
            let be = backend(g)?;
            let location = be.location();
            let id = ops::init::init(
                be,
                &password,
                &ops::init::InitOptions { kdf, zstd_level: a.zstd_level, frame_target: a.frame_target },
            )?;
            if g.json {
                print_json(&serde_json::json!({"id": id, "location": location}))?;
            } else {
                writeln!(out, "created repository {} at {location}", id.short())?;
            }
        }
        Command::Snapshot(a) => {
            let result = snapshot_command(g, a, &progress, &mut out);
            if let Some(path) = &a.report_file {
                // For a Job's termination message: the report, or the one-line error.
                let v = match &result {
                    Ok((code, report)) => serde_json::json!({"exitCode": code, "report": report}),
                    Err(e) => serde_json::json!({
                        "exitCode": e.downcast_ref::<kubesnap::Error>().map(kubesnap::Error::exit_code).unwrap_or(1),
                        "error": format!("{e:#}"),
                    }),
                };
                std::fs::write(path, termination_json(v))
                    .with_context(|| format!("cannot write the report file {}", path.display()))?;
            }
            return result.map(|(code, _)| code);
        }
        Command::Snapshots(SnapshotsCommand::List { cluster, tags }) => {
            let repo = open(g)?;
            let list = ops::snapshots::list(
                &repo,
                &ops::snapshots::ListOptions { cluster: cluster.clone(), tags: tags.clone() },
            );
            if g.json {
                print_json(&list)?;
            } else {
                writeln!(out, "{:<10} {:<22} {:<20} {:>8}  tags", "id", "time", "cluster", "objects")?;
                for s in list {
                    writeln!(
                        out,
                        "{:<10} {:<22} {:<20} {:>8}  {}",
                        s.id.short(),
                        s.time,
                        s.cluster,
                        s.objects,
                        s.tags.join(",")
                    )?;
                }
            }
        }
        Command::Snapshots(SnapshotsCommand::Show { snapshot, cluster }) => {
            let repo = open(g)?;
            let s = select::snapshot(&repo, snapshot, cluster.as_deref())?;
            let r = ops::snapshots::show(&repo, &s.id)?;
            if g.json {
                print_json(&r)?;
            } else {
                let m = &r.manifest;
                writeln!(out, "snapshot  {}", r.id)?;
                writeln!(out, "time      {}", m.time)?;
                writeln!(out, "cluster   {}", m.cluster)?;
                writeln!(out, "tags      {}", m.tags.join(", "))?;
                writeln!(out, "source    {} {}", m.source.kind, m.source.name)?;
                writeln!(
                    out,
                    "objects   {} ({} bytes desired state, {} bytes server fields)",
                    m.objects, m.desired_bytes, m.server_bytes
                )?;
                writeln!(
                    out,
                    "changes   +{} -{} ~{} against {}",
                    m.counts.added,
                    m.counts.removed,
                    m.counts.modified,
                    m.parent.map(|p| p.short()).unwrap_or_else(|| "nothing".into())
                )?;
                writeln!(out, "added     {} bytes", m.counts.bytes_added)?;
                writeln!(out, "program   {} on {}", m.program, m.hostname)?;
                if !m.types.is_empty() {
                    let discovered = m.types.iter().filter(|t| t.source == "discovery").count();
                    writeln!(
                        out,
                        "types     {} recorded ({} from discovery, {} from CRDs)",
                        m.types.len(),
                        discovered,
                        m.types.len() - discovered
                    )?;
                }
                let info = &m.source_info;
                let text = |k: &str| info.get(k).and_then(|v| v.as_str()).unwrap_or("-").to_string();
                if m.source.kind == "cluster" {
                    writeln!(
                        out,
                        "server    {} ({}), kube-system uid {}",
                        text("server"),
                        text("server_version"),
                        text("cluster_uid")
                    )?;
                    if let Some(scope) = info.get("scope") {
                        let list = |k: &str| {
                            scope
                                .get(k)
                                .and_then(|v| v.as_array())
                                .map(|a| a.iter().filter_map(|s| s.as_str()).collect::<Vec<_>>().join(","))
                                .unwrap_or_default()
                        };
                        let mut parts = vec![scope.get("kind").and_then(|v| v.as_str()).unwrap_or("-").to_string()];
                        for (k, label) in [
                            ("namespaces", "-n"),
                            ("exclude_namespaces", "--exclude-namespace"),
                            ("include_resources", "--include-resource"),
                            ("exclude_resources", "--exclude-resource"),
                        ] {
                            let v = list(k);
                            if !v.is_empty() {
                                parts.push(format!("{label} {v}"));
                            }
                        }
                        for (k, label) in [("app", "--app"), ("selector", "--selector")] {
                            if let Some(v) = scope.get(k).and_then(|v| v.as_str()) {
                                parts.push(format!("{label} {v}"));
                            }
                        }
                        if scope.get("with_references").and_then(|v| v.as_bool()) == Some(true) {
                            parts.push("--with-references".into());
                        }
                        if scope.get("include_cluster_resources").and_then(|v| v.as_bool()) == Some(false) {
                            parts.push("no cluster-scoped types".into());
                        }
                        if info.get("redact_secrets").and_then(|v| v.as_bool()) == Some(true) {
                            parts.push("--redact-secrets".into());
                        }
                        writeln!(out, "scope     {}", parts.join(" "))?;
                    }
                }
                if m.partial {
                    writeln!(out, "partial   yes: some types could not be listed completely")?;
                }
                for s in &m.skipped {
                    writeln!(
                        out,
                        "skipped   {}.{}: {}{}",
                        s.kind,
                        s.group,
                        s.reason,
                        if s.partial { " (partial)" } else { "" }
                    )?;
                }
            }
        }
        Command::Ls(a) => {
            let repo = open(g)?;
            let s = select::snapshot(&repo, &a.snapshot, a.scope.cluster.as_deref())?;
            let m = repo.load_manifest(&s.id)?;
            let filter = select::filter(&repo, &m, a.scope.namespace.as_deref(), a.scope.kind.as_deref())?;
            let list = ops::ls::ls(&repo, &s.id, &filter)?;
            if g.json {
                let refs: Vec<_> = list.iter().map(|e| &e.resource).collect();
                print_json(&refs)?;
            } else {
                for e in list {
                    writeln!(out, "{}", e.resource.display())?;
                }
            }
        }
        Command::Diff(a) => {
            let repo = open(g)?;
            let (r, snap_b) = if a.live {
                let (first, resources) = a.args.split_first().expect("clap requires one argument");
                let sa = select::snapshot(&repo, first, a.scope.cluster.as_deref())?;
                let m = repo.load_manifest(&sa.id)?;
                let filter = select::filter(&repo, &m, a.scope.namespace.as_deref(), a.scope.kind.as_deref())?;
                let opts = ops::livediff::LiveDiffOptions {
                    connect: a.target.connect(),
                    resources: resources.to_vec(),
                    filter,
                    patch: a.patch,
                    show_secrets: a.show_secrets,
                    include_owned: a.include_owned,
                    retry: a.target.retry(),
                    ..Default::default()
                };
                (ops::livediff::diff_live(&repo, &sa.id, &opts, &progress)?, "the live cluster".to_string())
            } else {
                let [x, y] = a.args.as_slice() else {
                    bail!(kubesnap::Error::Usage("diff takes two snapshots (A B), or one snapshot and --live".into()))
                };
                let sa = select::snapshot(&repo, x, a.scope.cluster.as_deref())?;
                let sb = select::snapshot(&repo, y, a.scope.cluster.as_deref())?;
                let m = repo.load_manifest(&sb.id)?;
                let filter = select::filter(&repo, &m, a.scope.namespace.as_deref(), a.scope.kind.as_deref())?;
                let opts = ops::diff::DiffOptions {
                    filter,
                    server_fields: a.server_fields,
                    patch: a.patch,
                    show_secrets: a.show_secrets,
                };
                (ops::diff::diff(&repo, &sa.id, &sb.id, &opts)?, sb.id.short())
            };
            io_stats(g, &repo);
            if g.json {
                print_json(&r)?;
            } else {
                print_diff(&mut out, &r)?;
                if !g.quiet {
                    eprintln!(
                        "{} added, {} removed, {} modified (against {snap_b})",
                        r.added.len(),
                        r.removed.len(),
                        r.modified.len()
                    );
                }
            }
            if a.live && !(r.added.is_empty() && r.removed.is_empty() && r.modified.is_empty()) {
                return Ok(EXIT_DIFFERENT);
            }
        }
        Command::Log(a) => {
            let repo = open(g)?;
            let opts = ops::log::LogOptions {
                resource: a.resource.clone(),
                namespace: a.namespace.clone(),
                cluster: a.cluster.clone(),
                patch: a.patch,
                server_fields: a.server_fields,
                show_secrets: a.show_secrets,
            };
            let r = ops::log::log(&repo, &opts)?;
            io_stats(g, &repo);
            if g.json {
                print_json(&r)?;
            } else {
                writeln!(out, "{}", r.resource.display())?;
                for rec in &r.records {
                    writeln!(out, "{} {} {}", rec.snapshot.short(), rec.time, rec.change)?;
                    for f in rec.fields.iter().flatten() {
                        writeln!(out, "    {}", ops::fielddiff::format_change(f))?;
                    }
                }
            }
        }
        Command::Restore(a) => {
            let repo = open(g)?;
            let (snap, resources) = match &a.at {
                Some(t) => (select::at(&repo, parse_time(t)?, a.scope.cluster.as_deref())?, a.args.clone()),
                None => {
                    let Some((first, rest)) = a.args.split_first() else {
                        bail!(kubesnap::Error::Usage(
                            "name a snapshot (an id, latest, latest~N) or give --at TIME".into()
                        ))
                    };
                    (select::snapshot(&repo, first, a.scope.cluster.as_deref())?, rest.to_vec())
                }
            };
            let m = repo.load_manifest(&snap.id)?;
            let filter = select::filter(&repo, &m, a.scope.namespace.as_deref(), a.scope.kind.as_deref())?;
            let clean = kubesnap::k8s::restore::CleanOptions {
                keep_volume_names: a.keep_volume_names,
                namespace_map: ops::apply::parse_namespace_map(&a.namespace_map)?,
            };
            if a.apply {
                let opts = ops::apply::ApplyOptions {
                    connect: a.target.connect(),
                    resources,
                    filter,
                    dry_run: a.dry_run,
                    existing: match a.existing {
                        ExistingArg::Skip => ops::apply::Existing::Skip,
                        ExistingArg::Update => ops::apply::Existing::Update,
                    },
                    force_conflicts: a.force_conflicts,
                    include_owned: a.include_owned,
                    clean,
                    show_secrets: a.show_secrets,
                    retry: a.target.retry(),
                    establish_timeout: std::time::Duration::from_secs(60),
                };
                let r = ops::apply::restore_apply(&repo, &snap.id, &opts, &progress)?;
                io_stats(g, &repo);
                if g.json {
                    print_json(&r)?;
                } else {
                    print_apply(&mut out, &r)?;
                    if !g.quiet {
                        let c = &r.counts;
                        let verb = if r.dry_run { "dry run of" } else { "restored" };
                        eprintln!(
                            "{verb} snapshot {} ({}) into {}: {} created, {} updated, {} unchanged, {} skipped, {} failed",
                            snap.id.short(),
                            snap.time,
                            r.context,
                            c.created,
                            c.updated,
                            c.unchanged,
                            c.skipped,
                            c.failed
                        );
                    }
                }
                return Ok(if r.counts.failed > 0 { EXIT_PARTIAL } else { 0 });
            }
            let output = match (&a.to_dir, a.stdout) {
                (Some(d), false) => ops::restore::Output::Dir(d.clone()),
                (None, true) => ops::restore::Output::Stdout,
                _ => bail!(kubesnap::Error::Usage(
                    "say where to restore: --apply (into the cluster), --to-dir DIR or --stdout".into()
                )),
            };
            let clean = (a.clean || !a.namespace_map.is_empty()).then_some(clean);
            let opts =
                ops::restore::RestoreOptions { resources, filter, server_fields: a.server_fields, clean, output };
            let restored = ops::restore::restore(&repo, &snap.id, &opts, &mut out)?;
            io_stats(g, &repo);
            if g.json && a.to_dir.is_some() {
                print_json(&serde_json::json!({"snapshot": snap.id, "restored": restored}))?;
            } else if !g.quiet {
                eprintln!("restored {} resource(s) from snapshot {} ({})", restored.len(), snap.id.short(), snap.time);
            }
        }
        Command::Check(a) => {
            let repo = open_with(g, true)?;
            let read_data_subset = match &a.read_data_subset {
                Some(s) => Some(ops::check::Subset::parse(s).ok_or_else(|| {
                    kubesnap::Error::Usage(format!(
                        "--read-data-subset {s:?}: expected a percentage (10%) or K/N (2/7)"
                    ))
                })?),
                None => None,
            };
            let r = ops::check::check(
                &repo,
                &ops::check::CheckOptions { read_data: a.read_data, read_data_subset },
                &progress,
            )?;
            if g.json {
                print_json(&r)?;
            } else {
                for w in &r.warnings {
                    eprintln!("warning: {w}");
                }
                for e in &r.errors {
                    writeln!(out, "error: {e}")?;
                }
                writeln!(
                    out,
                    "{}: {} snapshots, {} index files, {} packs, {} blobs{}",
                    if r.ok() { "no errors" } else { "repository is corrupt" },
                    r.snapshots,
                    r.index_files,
                    r.packs,
                    r.blobs,
                    if a.read_data { ", all data read" } else { "" }
                )?;
            }
            if !r.ok() {
                return Ok(6);
            }
        }
        Command::Forget(a) => {
            let mut repo = open(g)?;
            let (policy, zone) = a.keep.policy()?;
            let group_by_tags = match a.group_by.as_str() {
                "cluster" => false,
                "cluster,tags" | "tags,cluster" => true,
                other => {
                    bail!(kubesnap::Error::Usage(format!("--group-by {other:?}: expected cluster or cluster,tags")))
                }
            };
            let r = ops::forget::forget(
                &mut repo,
                &ops::forget::ForgetOptions {
                    snapshots: a.snapshots.clone(),
                    policy,
                    cluster: a.cluster.clone(),
                    group_by_tags,
                    zone,
                    dry_run: a.dry_run,
                },
            )?;
            let pruned = if a.prune {
                Some(ops::prune::prune(&mut repo, &a.prune_opts.options(a.dry_run)?, &progress)?)
            } else {
                None
            };
            if g.json {
                print_json(&serde_json::json!({"forget": r, "prune": pruned}))?;
            } else {
                print_forget(&mut out, &r)?;
                if let Some(p) = &pruned {
                    print_prune(&mut out, p)?;
                }
            }
        }
        Command::Key(k) => {
            let repo = open(g)?;
            match k {
                KeyCommand::List => {
                    let keys = ops::key::list(&repo)?;
                    if g.json {
                        print_json(&keys)?;
                    } else {
                        for key in keys {
                            writeln!(
                                out,
                                "{} {:<10} {:<26} {}@{} argon2id m={} t={} p={}",
                                if key.current { "*" } else { " " },
                                key.id.short(),
                                key.created,
                                key.username,
                                key.hostname,
                                key.kdf_memory_kib,
                                key.kdf_iterations,
                                key.kdf_parallelism
                            )?;
                        }
                    }
                }
                KeyCommand::Add(a) => {
                    let id = ops::key::add(&repo, &a.password()?, a.kdf.params())?;
                    if g.json {
                        print_json(&serde_json::json!({"added": id}))?;
                    } else {
                        writeln!(out, "added key {}", id.short())?;
                    }
                }
                KeyCommand::Remove { id } => {
                    let id = ops::key::remove(&repo, id)?;
                    if g.json {
                        print_json(&serde_json::json!({"removed": id}))?;
                    } else {
                        writeln!(out, "removed key {}", id.short())?;
                    }
                }
                KeyCommand::Passwd(a) => {
                    let id = ops::key::passwd(&repo, &a.password()?, a.kdf.params())?;
                    if g.json {
                        print_json(&serde_json::json!({"added": id, "removed": repo.key_id()}))?;
                    } else {
                        writeln!(out, "password changed: key {} replaces {}", id.short(), repo.key_id().short())?;
                    }
                }
            }
        }
        Command::Rewrite(a) => {
            let mut repo = open(g)?;
            let r = ops::rewrite::rewrite(
                &mut repo,
                &ops::rewrite::RewriteOptions {
                    exclude: a.exclude.clone(),
                    namespace: a.namespace.clone(),
                    snapshots: a.snapshots.clone(),
                    cluster: a.cluster.clone(),
                    dry_run: a.dry_run,
                },
            )?;
            if g.json {
                print_json(&r)?;
            } else {
                for w in &r.rewritten {
                    let names: Vec<String> = w.removed.iter().map(|r| r.display()).collect();
                    match &w.new {
                        Some(n) => writeln!(out, "{} -> {}: removed {}", w.old.short(), n.short(), names.join(", "))?,
                        None => writeln!(out, "{}: would remove {}", w.old.short(), names.join(", "))?,
                    }
                }
                writeln!(out, "{} snapshot(s) rewritten, {} unchanged", r.rewritten.len(), r.unchanged)?;
                if !r.dry_run && !r.rewritten.is_empty() {
                    writeln!(out, "run `kubesnap prune` to remove their data")?;
                }
            }
        }
        Command::Copy(a) => {
            let src = open(g)?;
            let mut options = Vec::new();
            for o in &a.to_options {
                let Some((k, v)) = o.split_once('=') else {
                    bail!(kubesnap::Error::Usage(format!("--to-option {o:?}: expected KEY=VALUE")))
                };
                options.push((k.trim().to_string(), v.to_string()));
            }
            let password = match &a.to_password_file {
                Some(f) => password_file(f)?,
                None => match std::env::var_os("KUBESNAP_TO_PASSWORD") {
                    Some(p) => p.into_encoded_bytes(),
                    None => bail!(kubesnap::Error::Usage(
                        "the destination's password: give --to-password-file or set KUBESNAP_TO_PASSWORD".into()
                    )),
                },
            };
            let be = kubesnap::backend::open_with(&a.to, &options).map_err(kubesnap::Error::from)?;
            let mut dst =
                Repository::open(be, &password, &OpenOptions { cache_dir: g.cache_dir.clone(), no_cache: g.no_cache })?;
            let chosen: Vec<_> = if a.snapshots.is_empty() {
                select::of_cluster(&src, a.cluster.as_deref())
            } else {
                a.snapshots.iter().map(|s| select::snapshot(&src, s, a.cluster.as_deref())).collect::<Result<_, _>>()?
            };
            let r = ops::copy::copy(&src, &mut dst, &chosen, &progress)?;
            if g.json {
                print_json(&r)?;
            } else {
                for c in &r.copied {
                    match &c.to {
                        Some(t) => writeln!(out, "{} -> {} ({} objects)", c.from.short(), t.short(), c.objects)?,
                        None => writeln!(out, "{}: copied before", c.from.short())?,
                    }
                }
            }
        }
        Command::Prune(a) => {
            let mut repo = open(g)?;
            let r = ops::prune::prune(&mut repo, &a.opts.options(a.dry_run)?, &progress)?;
            if g.json {
                print_json(&r)?;
            } else {
                print_prune(&mut out, &r)?;
            }
        }
        Command::Stats(a) => {
            let repo = open(g)?;
            let snap = a.snapshot.as_deref().map(|s| select::snapshot(&repo, s, a.cluster.as_deref())).transpose()?;
            let r = ops::stats::stats(&repo, snap.as_ref().map(|s| &s.id))?;
            if g.json {
                print_json(&r)?;
            } else {
                writeln!(out, "snapshots           {}", r.snapshots)?;
                writeln!(out, "objects             {}", r.objects)?;
                writeln!(out, "logical bytes       {}", r.logical_bytes)?;
                writeln!(out, "unique blobs        {}", r.blobs)?;
                writeln!(out, "deduplicated bytes  {}", r.deduplicated_bytes)?;
                writeln!(out, "stored bytes        {}", r.stored_bytes)?;
                writeln!(out, "compression ratio   {:.2}", r.compression_ratio)?;
                writeln!(out, "total ratio         {:.2}", r.total_ratio)?;
            }
        }
    }
    out.flush()?;
    Ok(0)
}

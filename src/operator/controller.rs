//! The kube-runtime controller: each `SnapshotSchedule` is reconciled into one owned CronJob,
//! its finished Jobs into its status and metrics, and its run-now annotation into a Job.
//!
//! Reconcile reads the schedule's Repository and checks that the Secrets it names exist (and
//! that the password Secret has its key); a schedule that fails a check gets `Ready=False`
//! with the reason, and its CronJob is removed so that nothing runs on a stale configuration.
//! Everything the operator writes is server-side applied with its own field manager
//! (`kubesnap-operator`), status included, so fields it stops setting go away.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::{self, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::{json, Value};

use super::crd::{Condition, Repository, Run, SnapshotSchedule, SnapshotScheduleStatus};
use super::metrics::Metrics;
use super::schedule::{self, Defaults, Invalid, Timing, RUN_NOW, SCHEDULE_ANNOTATION, SCHEDULE_LABEL};

/// The operator's field manager.
pub const MANAGER: &str = "kubesnap-operator";

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Json(#[from] serde_json::Error),
}

pub struct Context {
    pub client: Client,
    pub defaults: Defaults,
    pub metrics: Arc<Metrics>,
}

fn condition(old: &[Condition], status: bool, reason: &str, message: String, generation: Option<i64>) -> Condition {
    let status = if status { "True" } else { "False" };
    // The transition time changes only when the status does.
    let since = old
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| crate::timeutil::format(&chrono::SubsecRound::trunc_subsecs(Utc::now(), 0)));
    Condition {
        type_: "Ready".into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: since,
        observed_generation: generation,
    }
}

/// The schedule's references: its Repository, and that its Secrets exist.
async fn check_references(
    s: &SnapshotSchedule,
    ctx: &Context,
    ns: &str,
) -> Result<Result<Repository, Invalid>, ReconcileError> {
    let repos: Api<Repository> = Api::namespaced(ctx.client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let Some(repo) = repos.get_opt(&s.spec.repository).await? else {
        return Ok(Err(Invalid {
            reason: "RepositoryNotFound",
            message: format!("Repository {:?} does not exist in namespace {ns}", s.spec.repository),
        }));
    };
    let pw = &repo.spec.password_secret_ref;
    match secrets.get_opt(&pw.name).await? {
        None => {
            return Ok(Err(Invalid {
                reason: "SecretNotFound",
                message: format!(
                    "the password Secret {:?} of Repository {:?} does not exist",
                    pw.name,
                    repo.name_any()
                ),
            }))
        }
        Some(sec) => {
            let has =
                |m: &Option<std::collections::BTreeMap<String, _>>| m.as_ref().is_some_and(|m| m.contains_key(&pw.key));
            if !has(&sec.data) && !sec.string_data.as_ref().is_some_and(|m| m.contains_key(&pw.key)) {
                return Ok(Err(Invalid {
                    reason: "SecretNotFound",
                    message: format!("the password Secret {:?} has no key {:?}", pw.name, pw.key),
                }));
            }
        }
    }
    if let Some(c) = &repo.spec.credentials_secret_ref {
        if secrets.get_opt(&c.name).await?.is_none() {
            return Ok(Err(Invalid {
                reason: "SecretNotFound",
                message: format!(
                    "the credentials Secret {:?} of Repository {:?} does not exist",
                    c.name,
                    repo.name_any()
                ),
            }));
        }
    }
    Ok(Ok(repo))
}

/// The results of the schedule's finished Jobs that the status does not hold yet.
async fn new_runs(s: &SnapshotSchedule, ctx: &Context, ns: &str, kept: &[Run]) -> Result<Vec<Run>, ReconcileError> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let name = s.name_any();
    let lp = ListParams::default().labels(&format!("{SCHEDULE_LABEL}={}", schedule::label_value(s)));
    let mut out = Vec::new();
    for job in jobs.list(&lp).await? {
        if job.annotations().get(SCHEDULE_ANNOTATION) != Some(&name) {
            continue;
        }
        let job_name = job.name_any();
        if kept.iter().any(|r| r.job_name == job_name) {
            continue;
        }
        let job = serde_json::to_value(&job)?;
        // Finished at all? Only then are its pods read.
        if schedule::run_of(&job, &[]).is_none() {
            continue;
        }
        let pod_list =
            pods.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job_name}"))).await?;
        let mut pod_values: Vec<Value> = pod_list.items.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
        if pod_values.is_empty() {
            let legacy = pods.list(&ListParams::default().labels(&format!("job-name={job_name}"))).await?;
            pod_values = legacy.items.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
        }
        if let Some(run) = schedule::run_of(&job, &pod_values) {
            out.push(run);
        }
    }
    Ok(out)
}

pub async fn reconcile(s: Arc<SnapshotSchedule>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let ns = s.namespace().unwrap_or_default();
    let name = s.name_any();
    if s.meta().deletion_timestamp.is_some() {
        ctx.metrics.remove_schedule(&ns, &name);
        return Ok(Action::await_change());
    }
    let schedules: Api<SnapshotSchedule> = Api::namespaced(ctx.client.clone(), &ns);
    let cronjobs: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
    let old = s.status.clone().unwrap_or_default();
    let mut status = SnapshotScheduleStatus {
        observed_generation: s.meta().generation,
        last_run_now: old.last_run_now.clone(),
        last_runs: old.last_runs.clone(),
        last_successful_time: old.last_successful_time.clone(),
        ..Default::default()
    };
    let created = s.meta().creation_timestamp.as_ref().map(|t| t.0.as_millisecond() as f64 / 1000.0).unwrap_or(0.0);

    // Results first: they stand whatever the schedule says now.
    let seed = super::metrics::Seed { created, runs: &old.last_runs };
    ctx.metrics.observe_schedule(&ns, &name, &seed, None);
    let fresh = new_runs(&s, &ctx, &ns, &old.last_runs).await?;
    for r in &fresh {
        if !ctx.metrics.record_run(&ns, &name, r) {
            continue;
        }
        eprintln!(
            "{ns}/{name}: run {} {}{}",
            r.job_name,
            r.result,
            r.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
        );
    }
    status.last_runs = schedule::merge_runs(&old.last_runs, fresh);
    if let Some(t) =
        status.last_runs.iter().filter(|r| r.result == "Succeeded").filter_map(|r| r.end_time.clone()).max()
    {
        if status.last_successful_time.as_ref().is_none_or(|old| &t > old) {
            status.last_successful_time = Some(t);
        }
    }

    let checked: Result<(Timing, Repository), Invalid> = match schedule::validate(&s, &ctx.defaults) {
        Err(e) => Err(e),
        Ok(timing) => check_references(&s, &ctx, &ns).await?.map(|repo| (timing, repo)),
    };
    let cj_name = schedule::cron_job_name(&s);
    let requeue = match checked {
        Err(invalid) => {
            // Nothing may run on a configuration that no longer holds.
            if let Some(cj) = cronjobs.get_opt(&cj_name).await? {
                if cj.owner_references().iter().any(|o| Some(&o.uid) == s.meta().uid.as_ref()) {
                    cronjobs.delete(&cj_name, &DeleteParams::background()).await?;
                }
            }
            status.conditions =
                vec![condition(&old.conditions, false, invalid.reason, invalid.message, s.meta().generation)];
            // A missing Repository or Secret may appear at any time.
            Duration::from_secs(30)
        }
        Ok((timing, repo)) => {
            let now = Utc::now();
            ctx.metrics.observe_schedule(&ns, &name, &seed, timing.interval_seconds(now).map(|i| i as f64));
            let desired = schedule::desired_cron_job(&s, &repo, &ctx.defaults);
            let applied = cronjobs.patch(&cj_name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&desired)).await;
            match applied {
                Err(kube::Error::Api(e)) if (400..500).contains(&e.code) => {
                    status.conditions = vec![condition(
                        &old.conditions,
                        false,
                        "ApplyFailed",
                        format!("the CronJob was refused: {}", e.message),
                        s.meta().generation,
                    )];
                }
                Err(e) => return Err(e.into()),
                Ok(_) => {
                    status.cron_job_name = Some(cj_name.clone());
                    let (reason, message) = if s.spec.suspend {
                        ("Suspended", "suspended: no run starts until spec.suspend is false".to_string())
                    } else {
                        let next = timing.next_after(now);
                        status.next_run_time = next.map(|t| crate::timeutil::format(&t));
                        ("Scheduled", format!("CronJob {cj_name} runs on {:?}", s.spec.schedule))
                    };
                    status.conditions = vec![condition(&old.conditions, true, reason, message, s.meta().generation)];
                    // Run now, once per annotation value.
                    if let Some(v) = s.annotations().get(RUN_NOW).filter(|v| !v.is_empty()) {
                        if old.last_run_now.as_ref() != Some(v) {
                            let job: Job = serde_json::from_value(schedule::run_now_job(&s, &repo, &ctx.defaults, v))?;
                            let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
                            match jobs.create(&PostParams::default(), &job).await {
                                Ok(_) => {
                                    eprintln!("{ns}/{name}: run now ({RUN_NOW}={v}): Job {} created", job.name_any())
                                }
                                Err(kube::Error::Api(e)) if e.code == 409 => {}
                                Err(e) => return Err(e.into()),
                            }
                            status.last_run_now = Some(v.clone());
                        }
                    }
                }
            }
            Duration::from_secs(300)
        }
    };

    let patch = json!({
        "apiVersion": "kubesnap.io/v1alpha1",
        "kind": "SnapshotSchedule",
        "status": status,
    });
    if s.status.as_ref() != Some(&status) {
        schedules.patch_status(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await?;
    }
    Ok(Action::requeue(requeue))
}

pub fn error_policy(s: Arc<SnapshotSchedule>, e: &ReconcileError, _ctx: Arc<Context>) -> Action {
    eprintln!("{}/{}: {e}; retrying in 15s", s.namespace().unwrap_or_default(), s.name_any());
    Action::requeue(Duration::from_secs(15))
}

fn schedule_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<ObjectRef<SnapshotSchedule>> {
    let name = meta.annotations.as_ref()?.get(SCHEDULE_ANNOTATION)?;
    Some(ObjectRef::new(name).within(meta.namespace.as_deref()?))
}

/// Runs the controller until it stops (a signal, or the stream's end).
pub async fn run(ctx: Arc<Context>, namespace: Option<&str>) {
    let client = ctx.client.clone();
    fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let (schedules, cronjobs, jobs, pods, repos) = (
        api::<SnapshotSchedule>(&client, namespace),
        api::<CronJob>(&client, namespace),
        api::<Job>(&client, namespace),
        api::<Pod>(&client, namespace),
        api::<Repository>(&client, namespace),
    );
    let schedules_for_metrics = schedules.clone();
    let ours = watcher::Config::default().labels(SCHEDULE_LABEL);
    let controller = Controller::new(schedules, watcher::Config::default());
    let store = controller.store();
    // A deleted schedule is never reconciled again: its series go when its deletion is seen
    // (and, after a re-list, those of schedules the list no longer holds).
    let metrics = ctx.metrics.clone();
    let deletions = watcher(schedules_for_metrics, watcher::Config::default());
    tokio::spawn(async move {
        let mut events = std::pin::pin!(deletions);
        let mut listed = std::collections::HashSet::new();
        while let Some(ev) = events.next().await {
            match ev {
                Ok(watcher::Event::Delete(s)) => {
                    metrics.remove_schedule(&s.namespace().unwrap_or_default(), &s.name_any())
                }
                Ok(watcher::Event::Init) => listed.clear(),
                Ok(watcher::Event::InitApply(s)) => {
                    listed.insert((s.namespace().unwrap_or_default(), s.name_any()));
                }
                Ok(watcher::Event::InitDone) => {
                    metrics.retain_schedules(|ns, name| listed.contains(&(ns.to_string(), name.to_string())))
                }
                Ok(watcher::Event::Apply(_)) | Err(_) => {}
            }
        }
    });
    controller
        .owns(cronjobs, ours.clone())
        .watches(jobs, ours.clone(), |j: Job| schedule_of(&j.metadata))
        .watches(pods, ours, |p: Pod| schedule_of(&p.metadata))
        .watches(repos, watcher::Config::default(), move |r: Repository| {
            let ns = r.namespace();
            let name = r.name_any();
            store
                .state()
                .into_iter()
                .filter(|s| s.namespace() == ns && s.spec.repository == name)
                .map(|s| ObjectRef::from_obj(&*s))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                match e {
                    kube::runtime::controller::Error::ReconcilerFailed(..) => {}
                    other => eprintln!("controller: {other}"),
                }
            }
        })
        .await;
}

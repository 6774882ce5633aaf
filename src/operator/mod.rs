//! The operator: scheduled in-cluster snapshots. It only schedules: each `SnapshotSchedule`
//! becomes a CronJob whose Job runs the same `kubesnap snapshot` the CLI runs (one command,
//! retention included), and each finished Job's report, left in its termination message, lands
//! in the schedule's status and in the metrics.
//!
//! - [`crd`]: the custom resources and their generated CRDs;
//! - [`schedule`]: pure functions from a schedule to its CronJob, Jobs and run results;
//! - [`controller`]: the kube-runtime controller;
//! - [`leader`]: Lease-based leader election, so that two replicas are safe;
//! - [`metrics`]: `/metrics` in Prometheus' text format.

pub mod controller;
pub mod crd;
pub mod leader;
pub mod metrics;
pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

use crate::k8s::cluster::{load_config, ConnectOptions};
use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct OperatorOptions {
    pub connect: ConnectOptions,
    /// Watch one namespace only (default: all).
    pub namespace: Option<String>,
    /// Where `/metrics` and `/healthz` are served, e.g. `0.0.0.0:8080`.
    pub metrics_addr: String,
    /// Leader election (none: this replica acts alone, for development).
    pub lease: Option<leader::LeaseConfig>,
    pub defaults: schedule::Defaults,
}

/// Runs the operator until a signal stops it, or until it loses the leader lease (an error:
/// the process should exit and start again as a candidate).
pub fn run(opts: OperatorOptions) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Io("cannot start the operator's runtime".into(), e))?;
    rt.block_on(async move {
        let (config, context) = load_config(&opts.connect).await.map_err(|e| Error::Kube(e.to_string()))?;
        let client = kube::Client::try_from(config).map_err(|e| Error::Kube(format!("context {context:?}: {e}")))?;
        let metrics = Arc::new(metrics::Metrics::default());
        let listener = tokio::net::TcpListener::bind(&opts.metrics_addr)
            .await
            .map_err(|e| Error::Io(format!("cannot listen on {}", opts.metrics_addr), e))?;
        eprintln!(
            "kubesnap operator: metrics on http://{}/metrics",
            listener.local_addr().map(|a| a.to_string()).unwrap_or_default()
        );
        tokio::spawn(metrics::serve(listener, metrics.clone()));
        let ctx = Arc::new(controller::Context {
            client: client.clone(),
            defaults: opts.defaults.clone(),
            metrics: metrics.clone(),
        });
        match &opts.lease {
            None => {
                metrics.set_leader(true);
                controller::run(ctx, opts.namespace.as_deref()).await;
                Ok(())
            }
            Some(cfg) => {
                let leases: Api<Lease> = Api::namespaced(client, &cfg.namespace);
                eprintln!(
                    "kubesnap operator: waiting for the leader lease {}/{} as {}",
                    cfg.namespace, cfg.name, cfg.identity
                );
                let mut elector = leader::Elector::new(leases, cfg.clone());
                elector.acquire().await;
                metrics.set_leader(true);
                eprintln!("kubesnap operator: leading");
                tokio::select! {
                    _ = controller::run(ctx, opts.namespace.as_deref()) => Ok(()),
                    why = elector.keep() => {
                        metrics.set_leader(false);
                        Err(Error::Kube(format!("stopped leading: {why}; restarting as a candidate")))
                    }
                }
            }
        }
    })
}

/// The default lease timing (client-go's: 15 s leases; renewed here every 3 s).
pub fn lease_config(namespace: String, name: String, identity: String) -> leader::LeaseConfig {
    leader::LeaseConfig {
        namespace,
        name,
        identity,
        lease_duration: Duration::from_secs(15),
        renew: Duration::from_secs(3),
    }
}

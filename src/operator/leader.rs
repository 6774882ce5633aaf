//! Leader election over a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does
//! it:
//! - the holder renews `renewTime` every `renew` interval;
//! - another replica takes the lease only once it has seen the same holder and `renewTime` for a
//!   whole `leaseDurationSeconds` by its own clock (so clocks need not agree, only run at the same
//!   rate);
//! - every write carries the resourceVersion it read, so of two replicas racing for an expired
//!   lease exactly one wins (the other gets 409 Conflict);
//! - every request has a deadline, and a leader that has not renewed for two thirds of the lease
//!   duration (counted from the start of its last successful renewal) stops: the process exits
//!   and starts again as a candidate, before any other replica may take the lease.

use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod's name).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew: Duration,
}

impl LeaseConfig {
    /// How long a leader keeps acting without a successful renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration * 2 / 3
    }

    /// The deadline of one request.
    fn request_timeout(&self) -> Duration {
        (self.lease_duration / 3).max(Duration::from_millis(200))
    }
}

/// What a look at the lease found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Ours, or free: write it with us as the holder.
    Take { transition: bool },
    /// Someone else holds it.
    Held { holder: String },
}

/// Whether `identity` may take the lease, which has looked the same (holder and renewTime) for
/// `unchanged_for` by our clock (pure).
pub fn decide(lease: &Value, identity: &str, unchanged_for: Duration) -> Decision {
    let holder = lease.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or_default();
    if holder == identity {
        return Decision::Take { transition: false };
    }
    if holder.is_empty() {
        return Decision::Take { transition: true };
    }
    let duration = lease.pointer("/spec/leaseDurationSeconds").and_then(Value::as_u64).unwrap_or(15);
    if unchanged_for >= Duration::from_secs(duration) {
        Decision::Take { transition: true }
    } else {
        Decision::Held { holder: holder.to_string() }
    }
}

fn micro(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// One replica's view of the lease.
pub struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    /// The (holder, renewTime) last seen, and since when (our clock).
    seen: Option<((String, String), Instant)>,
}

impl Elector {
    pub fn new(api: Api<Lease>, cfg: LeaseConfig) -> Elector {
        Elector { api, cfg, seen: None }
    }

    /// Tries to acquire or renew the lease once: `Ok(true)` when this replica holds it now.
    pub async fn try_acquire(&mut self) -> Result<bool, kube::Error> {
        let timeout = self.cfg.request_timeout();
        match tokio::time::timeout(timeout, self.try_acquire_inner()).await {
            Ok(r) => r,
            Err(_) => Err(kube::Error::Service(format!("no answer within {}ms", timeout.as_millis()).into())),
        }
    }

    async fn try_acquire_inner(&mut self) -> Result<bool, kube::Error> {
        let cfg = &self.cfg;
        let now = Utc::now();
        let secs = cfg.lease_duration.as_secs().max(1) as i64;
        match self.api.get_opt(&cfg.name).await? {
            None => {
                let lease: Lease = serde_json::from_value(json!({
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                    "spec": {"holderIdentity": cfg.identity, "leaseDurationSeconds": secs,
                             "acquireTime": micro(now), "renewTime": micro(now), "leaseTransitions": 0},
                }))
                .map_err(kube::Error::SerdeError)?;
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(true),
                    Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                    Err(e) => Err(e),
                }
            }
            Some(lease) => {
                let mut v = serde_json::to_value(&lease).map_err(kube::Error::SerdeError)?;
                let key = (
                    v.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or_default().to_string(),
                    v.pointer("/spec/renewTime").map(Value::to_string).unwrap_or_default(),
                );
                let since = match &self.seen {
                    Some((k, t)) if *k == key => *t,
                    _ => {
                        let t = Instant::now();
                        self.seen = Some((key, t));
                        t
                    }
                };
                match decide(&v, &cfg.identity, since.elapsed()) {
                    Decision::Held { .. } => Ok(false),
                    Decision::Take { transition } => {
                        v["spec"]["holderIdentity"] = json!(cfg.identity);
                        v["spec"]["leaseDurationSeconds"] = json!(secs);
                        v["spec"]["renewTime"] = json!(micro(now));
                        if transition {
                            v["spec"]["acquireTime"] = json!(micro(now));
                            let n = v.pointer("/spec/leaseTransitions").and_then(Value::as_i64).unwrap_or(0);
                            v["spec"]["leaseTransitions"] = json!(n + 1);
                        }
                        let lease: Lease = serde_json::from_value(v).map_err(kube::Error::SerdeError)?;
                        // The resourceVersion read above makes this a compare-and-swap.
                        match self.api.replace(&cfg.name, &PostParams::default(), &lease).await {
                            Ok(_) => Ok(true),
                            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                            Err(e) => Err(e),
                        }
                    }
                }
            }
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => eprintln!("leader election: {e}"),
            }
            tokio::time::sleep(self.cfg.renew).await;
        }
    }

    /// Renews the lease until it is lost or cannot be renewed within the renew deadline; returns
    /// why (the caller stops acting as leader at once).
    pub async fn keep(&mut self) -> String {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(self.cfg.renew).await;
            let started = Instant::now();
            match self.try_acquire().await {
                Ok(true) => last_ok = started,
                Ok(false) => return "another replica took the leader lease".into(),
                Err(e) => {
                    if last_ok.elapsed() >= self.cfg.renew_deadline() {
                        return format!(
                            "the leader lease could not be renewed for {}s: {e}",
                            self.cfg.renew_deadline().as_secs_f64()
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_may_take_the_lease() {
        let lease = |holder: &str| json!({"spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}});
        let secs = Duration::from_secs;
        let table = [
            (lease("a"), "a", secs(100), Decision::Take { transition: false }),
            (lease("b"), "a", secs(5), Decision::Held { holder: "b".into() }),
            (lease("b"), "a", secs(14), Decision::Held { holder: "b".into() }),
            (lease("b"), "a", secs(15), Decision::Take { transition: true }),
            (lease(""), "a", secs(0), Decision::Take { transition: true }),
            (json!({"spec": {"holderIdentity": "b"}}), "a", secs(15), Decision::Take { transition: true }),
        ];
        for (l, me, seen_for, want) in table {
            assert_eq!(decide(&l, me, seen_for), want, "{l} seen for {seen_for:?}");
        }
        let cfg = LeaseConfig {
            namespace: "n".into(),
            name: "l".into(),
            identity: "a".into(),
            lease_duration: secs(15),
            renew: secs(3),
        };
        // A leader gives up before anyone else may take the lease.
        assert!(cfg.renew_deadline() < cfg.lease_duration);
    }
}

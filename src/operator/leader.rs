//! Leader election over a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does
//! it: the holder renews `renewTime` every `renew` interval; another replica takes the lease
//! only once `renewTime + leaseDurationSeconds` has passed. Every write carries the
//! resourceVersion it read, so of two replicas racing for an expired lease exactly one wins
//! (the other gets 409 Conflict). A leader that cannot renew within the lease duration stops
//! (the process exits and restarts as a candidate), so two replicas never act at once for
//! longer than one renew interval of clock skew.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod's name).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew: Duration,
}

/// What a look at the lease found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Ours, or free: write it with us as the holder.
    Take { transition: bool },
    /// Someone else holds it, until the given time.
    Held { holder: String },
}

fn time_of(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    v.pointer(&format!("/spec/{key}"))
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Whether `identity` may take the lease at `now` (pure).
pub fn decide(lease: &Value, identity: &str, now: DateTime<Utc>) -> Decision {
    let holder = lease.pointer("/spec/holderIdentity").and_then(Value::as_str).unwrap_or_default();
    if holder == identity {
        return Decision::Take { transition: false };
    }
    if holder.is_empty() {
        return Decision::Take { transition: true };
    }
    let duration = lease.pointer("/spec/leaseDurationSeconds").and_then(Value::as_i64).unwrap_or(15);
    let renewed = time_of(lease, "renewTime").or_else(|| time_of(lease, "acquireTime"));
    match renewed {
        Some(t) if t + chrono::Duration::seconds(duration) > now => Decision::Held { holder: holder.to_string() },
        _ => Decision::Take { transition: true },
    }
}

fn micro(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Tries to acquire or renew the lease once: `Ok(true)` when this replica holds it now.
pub async fn try_acquire(api: &Api<Lease>, cfg: &LeaseConfig) -> Result<bool, kube::Error> {
    let now = Utc::now();
    let secs = cfg.lease_duration.as_secs() as i64;
    match api.get_opt(&cfg.name).await? {
        None => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": cfg.name, "namespace": cfg.namespace},
                "spec": {"holderIdentity": cfg.identity, "leaseDurationSeconds": secs,
                         "acquireTime": micro(now), "renewTime": micro(now), "leaseTransitions": 0},
            }))
            .map_err(kube::Error::SerdeError)?;
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(lease) => {
            let mut v = serde_json::to_value(&lease).map_err(kube::Error::SerdeError)?;
            match decide(&v, &cfg.identity, now) {
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
                    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
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
pub async fn acquire(api: &Api<Lease>, cfg: &LeaseConfig) {
    loop {
        match try_acquire(api, cfg).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => eprintln!("leader election: {e}"),
        }
        tokio::time::sleep(cfg.renew).await;
    }
}

/// Renews the lease until a renewal fails for a whole lease duration; returns then (the caller
/// stops acting as leader).
pub async fn keep(api: &Api<Lease>, cfg: &LeaseConfig) -> String {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(cfg.renew).await;
        match try_acquire(api, cfg).await {
            Ok(true) => last_ok = tokio::time::Instant::now(),
            Ok(false) => return "another replica took the leader lease".into(),
            Err(e) => {
                if last_ok.elapsed() >= cfg.lease_duration {
                    return format!("the leader lease could not be renewed for {}s: {e}", cfg.lease_duration.as_secs());
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
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z").unwrap().with_timezone(&Utc);
        let lease = |holder: &str, renewed: &str| json!({"spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed}});
        let table = [
            (lease("a", "2026-11-25T09:59:55.000000Z"), "a", Decision::Take { transition: false }),
            (lease("b", "2026-11-25T09:59:55.000000Z"), "a", Decision::Held { holder: "b".into() }),
            (lease("b", "2026-11-25T09:59:40.000000Z"), "a", Decision::Take { transition: true }),
            (lease("", "2026-11-25T09:59:55.000000Z"), "a", Decision::Take { transition: true }),
            (json!({"spec": {"holderIdentity": "b"}}), "a", Decision::Take { transition: true }),
        ];
        for (l, me, want) in table {
            assert_eq!(decide(&l, me, now), want, "{l}");
        }
    }
}

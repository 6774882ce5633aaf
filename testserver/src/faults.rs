//! Faults on demand and the request log.
//!
//! A [`Fault`] matches resource requests (never discovery or `/version`) by group, resource,
//! verb and whether the request carries a `continue` token; it lets `skip` matching requests
//! through, then fires `times` times (or forever). The first matching fault that fires decides
//! the reply. Actions: a `Status` error (403, 410, 429 with `Retry-After`, 500, any code), a
//! delay before the normal reply, a body cut in the middle (the declared `Content-Length` is not
//! reached and the connection is closed), a body that is not JSON, or a connection closed
//! without any reply.
//!
//! The binary takes faults from `--fault SPEC` (see [`Fault::parse`]) and from its control
//! endpoint (`POST /testserver/faults` with a JSON [`Fault`], `DELETE /testserver/faults`).
//! The request log records every request with its final status (0 when the connection was
//! dropped); `GET /testserver/requests` returns it as JSON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// What a fault does to the request it hits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum FaultAction {
    /// 403 Forbidden, as RBAC refuses.
    Forbidden,
    /// 410 Expired, as for a compacted continue token.
    Gone,
    /// 429 TooManyRequests with `Retry-After: retry_after_seconds`.
    TooManyRequests {
        /// Seconds for `Retry-After`.
        #[serde(rename = "retryAfterSeconds")]
        retry_after_seconds: u64,
    },
    /// 500 InternalError.
    InternalError,
    /// Any error code, with a generic reason.
    Status {
        /// The HTTP code.
        code: u16,
    },
    /// Wait before serving the request normally.
    Delay {
        /// Milliseconds.
        millis: u64,
    },
    /// Serve normally, but stop the body halfway and close the connection.
    TruncatedBody,
    /// Reply 200 with a body that is not valid JSON.
    MalformedBody,
    /// Close the connection without replying.
    DropConnection,
}

/// A fault rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Fault {
    /// Only this API group (`""` for core); any when `None`.
    pub group: Option<String>,
    /// Only this resource (plural); any when `None`.
    pub resource: Option<String>,
    /// Only these verbs (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`); any when empty.
    pub verbs: Vec<String>,
    /// Only requests carrying a `continue` token.
    pub only_continue: bool,
    /// Matching requests let through before the fault fires.
    pub skip: usize,
    /// How many times it fires; forever when `None`.
    pub times: Option<usize>,
    /// What it does.
    pub action: FaultAction,
}

impl Default for Fault {
    fn default() -> Self {
        Fault {
            group: None,
            resource: None,
            verbs: Vec::new(),
            only_continue: false,
            skip: 0,
            times: None,
            action: FaultAction::InternalError,
        }
    }
}

impl Fault {
    /// A fault doing `action` to every resource request.
    pub fn new(action: FaultAction) -> Self {
        Fault { action, ..Fault::default() }
    }

    /// 410 Gone on the `n`th (1-based) continued list of a resource.
    pub fn gone_on_continue(n: usize) -> Self {
        Fault {
            only_continue: true,
            skip: n.saturating_sub(1),
            times: Some(1),
            verbs: vec!["list".into()],
            ..Fault::new(FaultAction::Gone)
        }
    }

    /// Only requests to (group, resource).
    #[must_use]
    pub fn on(mut self, group: &str, resource: &str) -> Self {
        self.group = Some(group.to_string());
        self.resource = Some(resource.to_string());
        self
    }

    /// Only this verb (may be called several times).
    #[must_use]
    pub fn verb(mut self, verb: &str) -> Self {
        self.verbs.push(verb.to_string());
        self
    }

    /// Let `n` matching requests through first.
    #[must_use]
    pub fn skip(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }

    /// Fire `n` times, then stop.
    #[must_use]
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    /// Parses the binary's `--fault` syntax:
    /// `[GROUP/]RESOURCE[:VERB]=ACTION[;skip=N][;times=N][;continue]`, where GROUP is `core` or
    /// empty for the core group, RESOURCE may be `*`, and ACTION is one of `403`, `410`,
    /// `429[:SECONDS]`, `500`, `status:CODE`, `delay:MILLIS`, `truncate`, `malformed`, `drop`,
    /// `gone-on-continue:N`. Examples: `apps/deployments:list=500;times=2`, `secrets=403`,
    /// `*=delay:200`.
    ///
    /// # Errors
    /// A message saying what part is wrong.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut parts = spec.split(';');
        let head = parts.next().unwrap_or_default();
        let (target, action) = head.split_once('=').ok_or_else(|| format!("{spec:?}: expected TARGET=ACTION"))?;
        let (target, verb) = match target.split_once(':') {
            Some((t, v)) => (t, Some(v)),
            None => (target, None),
        };
        let (group, resource) = match target.split_once('/') {
            Some((g, r)) => (Some(if g == "core" { String::new() } else { g.to_string() }), r),
            None => (None, target),
        };
        let (name, arg) = match action.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (action, None),
        };
        let num = |a: Option<&str>, default: Option<u64>| -> Result<u64, String> {
            match a {
                Some(s) => s.parse().map_err(|_| format!("{spec:?}: {s:?} is not a number")),
                None => default.ok_or_else(|| format!("{spec:?}: {name} needs a number")),
            }
        };
        let mut fault = match name {
            "403" => Fault::new(FaultAction::Forbidden),
            "410" => Fault::new(FaultAction::Gone),
            "429" => Fault::new(FaultAction::TooManyRequests { retry_after_seconds: num(arg, Some(1))? }),
            "500" => Fault::new(FaultAction::InternalError),
            "status" => Fault::new(FaultAction::Status {
                code: u16::try_from(num(arg, None)?).map_err(|_| format!("{spec:?}: bad code"))?,
            }),
            "delay" => Fault::new(FaultAction::Delay { millis: num(arg, None)? }),
            "truncate" => Fault::new(FaultAction::TruncatedBody),
            "malformed" => Fault::new(FaultAction::MalformedBody),
            "drop" => Fault::new(FaultAction::DropConnection),
            "gone-on-continue" => Fault::gone_on_continue(usize::try_from(num(arg, None)?).unwrap_or(usize::MAX)),
            other => return Err(format!("{spec:?}: unknown action {other:?}")),
        };
        if resource != "*" && !resource.is_empty() {
            fault.resource = Some(resource.to_string());
        }
        fault.group = group;
        if let Some(v) = verb {
            fault.verbs = vec![v.to_string()];
        }
        for opt in parts {
            match opt.split_once('=') {
                Some(("skip", n)) => fault.skip = n.parse().map_err(|_| format!("{spec:?}: bad skip"))?,
                Some(("times", n)) => fault.times = Some(n.parse().map_err(|_| format!("{spec:?}: bad times"))?),
                None if opt == "continue" => fault.only_continue = true,
                _ => return Err(format!("{spec:?}: unknown option {opt:?}")),
            }
        }
        Ok(fault)
    }

    fn matches(&self, req: &FaultTarget<'_>) -> bool {
        self.group.as_deref().is_none_or(|g| g == req.group)
            && self.resource.as_deref().is_none_or(|r| r == req.resource)
            && (self.verbs.is_empty() || self.verbs.iter().any(|v| v == req.verb))
            && (!self.only_continue || req.has_continue)
    }
}

/// What a fault is matched against.
#[derive(Debug, Clone, Copy)]
pub struct FaultTarget<'a> {
    /// API group.
    pub group: &'a str,
    /// Resource plural.
    pub resource: &'a str,
    /// Kubernetes verb.
    pub verb: &'a str,
    /// Whether the request has a `continue` token.
    pub has_continue: bool,
}

/// The id of an added fault, to remove it or ask how often it fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FaultId(pub u64);

#[derive(Debug)]
struct Rule {
    id: FaultId,
    fault: Fault,
    matched: usize,
    fired: usize,
}

/// The active faults of a server.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    next: AtomicU64,
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a fault; faults are tried in the order they were added.
    pub fn add(&self, fault: Fault) -> FaultId {
        let id = FaultId(self.next.fetch_add(1, Ordering::Relaxed));
        self.lock().push(Rule { id, fault, matched: 0, fired: 0 });
        id
    }

    /// Removes a fault; false if it was not there.
    pub fn remove(&self, id: FaultId) -> bool {
        let mut rules = self.lock();
        let before = rules.len();
        rules.retain(|r| r.id != id);
        rules.len() != before
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.lock().clear();
    }

    /// How many times a fault fired (0 for an unknown id).
    pub fn fired(&self, id: FaultId) -> usize {
        self.lock().iter().find(|r| r.id == id).map_or(0, |r| r.fired)
    }

    /// The active faults.
    pub fn list(&self) -> Vec<(FaultId, Fault)> {
        self.lock().iter().map(|r| (r.id, r.fault.clone())).collect()
    }

    /// The action for a request, counting it against every matching fault.
    pub fn check(&self, target: &FaultTarget<'_>) -> Option<FaultAction> {
        let mut rules = self.lock();
        let mut action = None;
        for r in rules.iter_mut() {
            if !r.fault.matches(target) {
                continue;
            }
            r.matched += 1;
            if action.is_none() && r.matched > r.fault.skip && r.fault.times.is_none_or(|t| r.fired < t) {
                r.fired += 1;
                action = Some(r.fault.action.clone());
            }
        }
        action
    }
}

/// One logged request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// Path, undecoded.
    pub path: String,
    /// Query string, undecoded (`""` when none).
    pub query: String,
    /// Reply status; 0 when the connection was dropped without a reply.
    pub status: u16,
    /// The Kubernetes verb, for resource requests.
    pub verb: Option<String>,
    /// The group, for resource requests.
    pub group: Option<String>,
    /// The resource, for resource requests.
    pub resource: Option<String>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The fault that hit the request, if any (its `Debug` form).
    pub fault: Option<String>,
}

/// The request log.
#[derive(Debug, Default)]
pub struct RequestLog {
    records: Mutex<Vec<RequestRecord>>,
}

impl RequestLog {
    /// Appends a record.
    pub fn push(&self, r: RequestRecord) {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(r);
    }

    /// Every record so far.
    pub fn all(&self) -> Vec<RequestRecord> {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Forgets every record.
    pub fn clear(&self) {
        self.records.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(resource: &'a str, verb: &'a str, has_continue: bool) -> FaultTarget<'a> {
        FaultTarget { group: "apps", resource, verb, has_continue }
    }

    #[test]
    fn skip_times_and_filters() {
        let faults = Faults::default();
        let id =
            faults.add(Fault::new(FaultAction::InternalError).on("apps", "deployments").verb("list").skip(1).times(2));
        let got: Vec<bool> = (0..5).map(|_| faults.check(&target("deployments", "list", false)).is_some()).collect();
        assert_eq!(got, [false, true, true, false, false]);
        assert_eq!(faults.check(&target("deployments", "get", false)), None);
        assert_eq!(faults.check(&target("replicasets", "list", false)), None);
        assert_eq!(faults.fired(id), 2);
        assert!(faults.remove(id));
        assert!(!faults.remove(id));
    }

    #[test]
    fn gone_on_the_nth_continue() {
        let faults = Faults::default();
        faults.add(Fault::gone_on_continue(2).on("apps", "deployments"));
        let seq = [false, true, false, true, true];
        let got: Vec<Option<FaultAction>> =
            seq.iter().map(|c| faults.check(&target("deployments", "list", *c))).collect();
        assert_eq!(got, [None, None, None, Some(FaultAction::Gone), None]);
    }

    #[test]
    fn parse_specs() {
        let cases: &[(&str, Fault)] = &[
            (
                "apps/deployments:list=500;times=2",
                Fault {
                    verbs: vec!["list".into()],
                    times: Some(2),
                    ..Fault::new(FaultAction::InternalError).on("apps", "deployments")
                },
            ),
            ("core/secrets=403", Fault::new(FaultAction::Forbidden).on("", "secrets")),
            ("*=delay:200", Fault::new(FaultAction::Delay { millis: 200 })),
            (
                "pods=429:7;skip=1",
                Fault {
                    resource: Some("pods".into()),
                    skip: 1,
                    ..Fault::new(FaultAction::TooManyRequests { retry_after_seconds: 7 })
                },
            ),
            (
                "pods=429",
                Fault {
                    resource: Some("pods".into()),
                    ..Fault::new(FaultAction::TooManyRequests { retry_after_seconds: 1 })
                },
            ),
            (
                "configmaps=drop;continue",
                Fault {
                    resource: Some("configmaps".into()),
                    only_continue: true,
                    ..Fault::new(FaultAction::DropConnection)
                },
            ),
            ("apps/deployments=gone-on-continue:3", Fault::gone_on_continue(3).on("apps", "deployments")),
            ("x=status:503", Fault { resource: Some("x".into()), ..Fault::new(FaultAction::Status { code: 503 }) }),
            ("x=truncate", Fault { resource: Some("x".into()), ..Fault::new(FaultAction::TruncatedBody) }),
            ("x=malformed", Fault { resource: Some("x".into()), ..Fault::new(FaultAction::MalformedBody) }),
        ];
        for (spec, want) in cases {
            assert_eq!(Fault::parse(spec).as_ref(), Ok(want), "{spec}");
        }
        for bad in ["pods", "pods=teapot", "pods=delay", "pods=500;skip=x", "pods=500;frob"] {
            assert!(Fault::parse(bad).is_err(), "{bad}");
        }
        let json = serde_json::to_string(&cases[3].1).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Fault>(&json).ok().as_ref(), Some(&cases[3].1));
        let minimal: Fault =
            serde_json::from_str(r#"{"resource": "pods", "action": {"type": "forbidden"}}"#).unwrap_or_default();
        assert_eq!(minimal, Fault { resource: Some("pods".into()), ..Fault::new(FaultAction::Forbidden) });
    }
}

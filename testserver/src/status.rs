//! API errors as Kubernetes returns them: a `metav1.Status` object with a machine-readable
//! `reason`, the HTTP code, and the same message wording as kube-apiserver, so that kubectl and
//! client libraries classify them exactly as they would for a real cluster.
//!
//! Differences: `details.uid` is never filled, and `details.causes` only for server-side apply
//! conflicts, validation errors and unsupported media types.

use serde_json::{json, Value};

/// An error reply: everything needed to write a `Status` body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.StatusReason` (`NotFound`, `AlreadyExists`, `Conflict`, ...); empty for an
    /// untyped error (no `reason` in the body).
    pub reason: String,
    /// Human-readable message, worded as kube-apiserver words it.
    pub message: String,
    /// `details`, when there are any.
    pub details: Option<Box<Value>>,
    /// Seconds for a `Retry-After` header (429, and 500s that ask for a retry).
    pub retry_after: Option<u64>,
}

/// `resource.group` as Kubernetes names a group-resource in messages (`pods`, `deployments.apps`).
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    /// Any error, from its parts.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError { code, reason: reason.to_string(), message: message.into(), details: None, retry_after: None }
    }

    fn with_details(mut self, group: &str, resource: &str, name: &str) -> Self {
        let mut d = serde_json::Map::new();
        if !name.is_empty() {
            d.insert("name".into(), json!(name));
        }
        if !group.is_empty() {
            d.insert("group".into(), json!(group));
        }
        d.insert("kind".into(), json!(resource));
        self.details = Some(Box::new(Value::Object(d)));
        self
    }

    fn with_cause(mut self, reason: &str, message: &str) -> Self {
        self.details = Some(Box::new(json!({ "causes": [{ "reason": reason, "message": message }] })));
        self
    }

    /// 404: `pods "web" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(404, "NotFound", format!("{} \"{name}\" not found", qualified(group, resource)))
            .with_details(group, resource, name)
    }

    /// 404 for a path that names no served resource.
    pub fn path_not_found() -> Self {
        Self::new(404, "NotFound", "the server could not find the requested resource")
    }

    /// 409: `deployments.apps "web" already exists`.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", qualified(group, resource)))
            .with_details(group, resource, name)
    }

    /// 409: a stale `resourceVersion` (or a failed precondition).
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {} \"{name}\": {why}", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// 409 for an update carrying an old `resourceVersion`.
    pub fn stale(group: &str, resource: &str, name: &str) -> Self {
        Self::conflict(
            group,
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 403 as the RBAC authorizer words it for the anonymous user.
    pub fn forbidden(group: &str, resource: &str, name: &str, verb: &str, namespace: Option<&str>) -> Self {
        let scope = match namespace {
            Some(ns) if !ns.is_empty() => format!("in the namespace \"{ns}\""),
            _ => "at the cluster scope".to_string(),
        };
        let target = if name.is_empty() {
            qualified(group, resource)
        } else {
            format!("{} \"{name}\"", qualified(group, resource))
        };
        Self::new(
            403,
            "Forbidden",
            format!("{target} is forbidden: User \"system:anonymous\" cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"),
        )
        .with_details(group, resource, name)
    }

    /// 410 Expired: a continue token or watch resourceVersion older than the compaction point.
    pub fn expired_continue() -> Self {
        Self::new(
            410,
            "Expired",
            "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        )
    }

    /// 410 Expired for a watch or exact list at a compacted resourceVersion.
    pub fn too_old(requested: u64, oldest: u64) -> Self {
        Self::new(410, "Expired", format!("too old resource version: {requested} ({oldest})"))
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(retry_after: u64) -> Self {
        let mut e = Self::new(429, "TooManyRequests", "Too many requests, please try again later.");
        e.details = Some(Box::new(json!({ "retryAfterSeconds": retry_after })));
        e.retry_after = Some(retry_after);
        e
    }

    /// 500.
    pub fn internal(message: &str) -> Self {
        Self::new(500, "InternalError", format!("Internal error occurred: {message}"))
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 422: `Deployment.apps "web" is invalid: metadata.name: Required value`.
    pub fn invalid(group: &str, kind: &str, name: &str, field: &str, why: &str) -> Self {
        let gk = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        let mut e = Self::new(422, "Invalid", format!("{gk} \"{name}\" is invalid: {field}: {why}"));
        e.details = Some(Box::new(json!({
            "name": name, "group": group, "kind": kind,
            "causes": [{ "reason": "FieldValueInvalid", "message": why, "field": field }],
        })));
        e
    }

    /// 405.
    pub fn method_not_allowed() -> Self {
        Self::new(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    }

    /// 415 for a body format the request does not accept (`accepted`: a comma-separated list).
    pub fn unsupported_media_type(content_type: &str, accepted: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: {accepted}"),
        )
        .with_cause("UnsupportedMediaType", &format!("unsupported content type {content_type:?}"))
    }

    /// The `Status` body.
    pub fn to_status(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
        });
        if !self.reason.is_empty() {
            v["reason"] = json!(self.reason);
        }
        if let Some(d) = &self.details {
            v["details"] = (**d).clone();
        }
        v["code"] = json!(self.code);
        v
    }
}

/// A `Status` with `status: Success` (what some deletes return).
pub fn success_status(group: &str, resource: &str, name: &str, uid: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
        "details": { "name": name, "group": group, "kind": resource, "uid": uid },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_kube_apiserver() {
        let cases: &[(ApiError, u16, &str, &str)] = &[
            (ApiError::not_found("", "pods", "web"), 404, "NotFound", "pods \"web\" not found"),
            (ApiError::already_exists("apps", "deployments", "web"), 409, "AlreadyExists", "deployments.apps \"web\" already exists"),
            (ApiError::forbidden("apps", "deployments", "", "list", None), 403, "Forbidden",
             "deployments.apps is forbidden: User \"system:anonymous\" cannot list resource \"deployments\" in API group \"apps\" at the cluster scope"),
            (ApiError::too_many_requests(3), 429, "TooManyRequests", "Too many requests, please try again later."),
            (ApiError::too_old(1, 5), 410, "Expired", "too old resource version: 1 (5)"),
        ];
        for (err, code, reason, message) in cases {
            let s = err.to_status();
            assert_eq!(s["code"], *code);
            assert_eq!(s["reason"], *reason);
            assert_eq!(s["message"], *message);
            assert_eq!(s["kind"], "Status");
        }
    }
}

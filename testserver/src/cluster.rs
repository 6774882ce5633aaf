//! What kube-apiserver does with a request once it knows the resource: the verbs, with
//! Kubernetes' preconditions, defaults and side effects, independent of HTTP.
//!
//! Emulated: server-assigned `uid`, `creationTimestamp`, `resourceVersion` and `generation`
//! (bumped when anything but `metadata` and `status` changes, for types that keep one);
//! `generateName`; `AlreadyExists`, `NotFound`, stale-`resourceVersion` conflicts and delete
//! preconditions; namespaced objects need an existing namespace; `status` ignored on writes to
//! the main resource of a type with a status subresource (and dropped on create), writable
//! through `/status`; `/scale` for the types that have it; no-op updates that do not bump the
//! resourceVersion; deletion that waits for `metadata.finalizers` (setting
//! `deletionTimestamp`); `dryRun=All`; managed fields for every write (see [`crate::fields`]);
//! a CustomResourceDefinition that is created becomes `Established` and its resource is served
//! at once, and deleting it removes the resource and its objects. New namespaces get the
//! `kubernetes.io/metadata.name` label, the `kubernetes` finalizer and `status.phase: Active`.
//! Updates that change an immutable field (a subset, see [`immutable_change`]) fail with 422
//! `Invalid` and kube-apiserver's `field is immutable` message.
//!
//! Differences: no admission, defaulting or validation beyond the above (no cluster IPs are
//! allocated; `fieldValidation` is accepted and ignored) (a Deployment without
//! a selector is accepted); no controllers (a Deployment never gets ReplicaSets, nothing is
//! garbage-collected through `ownerReferences`, pods are deleted at once instead of
//! gracefully); deleting a namespace deletes its objects at once; lists of built-in types omit
//! the items' `apiVersion`/`kind` as the real server does, custom resources keep them.

use std::sync::{Arc, RwLock};

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::fields::{self, Schema, Writer};
use crate::patch;
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{GroupResource, ObjectKey, Store};
use crate::types::{self, Origin, Registry, ResourceType};
use crate::util;

/// The state behind a server: types and objects.
#[derive(Debug)]
pub struct Cluster {
    registry: RwLock<Registry>,
    store: Store,
}

/// What a request targets, once its path was resolved.
#[derive(Debug, Clone)]
pub struct Target {
    /// The type.
    pub rtype: ResourceType,
    /// The version asked for.
    pub version: String,
    /// The namespace in the path.
    pub namespace: Option<String>,
    /// The object name in the path.
    pub name: Option<String>,
    /// `status` or `scale`.
    pub subresource: Option<String>,
}

impl Target {
    /// The (group, resource).
    pub fn gr(&self) -> GroupResource {
        GroupResource::new(&self.rtype.group, &self.rtype.plural)
    }

    fn key(&self) -> ObjectKey {
        (self.scope_ns(), self.name.clone().unwrap_or_default())
    }

    fn scope_ns(&self) -> String {
        if self.rtype.namespaced {
            self.namespace.clone().unwrap_or_default()
        } else {
            String::new()
        }
    }

    fn not_found(&self) -> ApiError {
        ApiError::not_found(&self.rtype.group, &self.rtype.plural, self.name.as_deref().unwrap_or_default())
    }
}

/// Options of a write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager`.
    pub field_manager: Option<String>,
    /// The `User-Agent`, for the default manager name.
    pub user_agent: String,
    /// `force` (server-side apply).
    pub force: bool,
}

impl WriteOptions {
    fn manager(&self) -> String {
        match &self.field_manager {
            Some(m) if !m.is_empty() => m.clone(),
            _ => {
                let ua = self.user_agent.split('/').next().unwrap_or_default();
                if ua.is_empty() {
                    "unknown".into()
                } else {
                    ua.to_string()
                }
            }
        }
    }
}

/// The patch formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/merge-patch+json`.
    Merge,
    /// `application/json-patch+json`.
    Json,
    /// `application/strategic-merge-patch+json`.
    Strategic,
    /// `application/apply-patch+yaml`.
    Apply,
}

impl PatchType {
    /// From a `Content-Type`.
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        Some(match base {
            "application/merge-patch+json" => PatchType::Merge,
            "application/json-patch+json" => PatchType::Json,
            "application/strategic-merge-patch+json" => PatchType::Strategic,
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => PatchType::Apply,
            _ => return None,
        })
    }
}

/// List parameters.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `limit` (0: no limit).
    pub limit: usize,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`.
    pub resource_version_match: Option<String>,
    /// `labelSelector`.
    pub label_selector: LabelSelector,
    /// `fieldSelector`.
    pub field_selector: FieldSelector,
}

/// Delete options (query parameters or a `DeleteOptions` body).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

/// A continue token: the snapshot resourceVersion and the last key served.
pub fn encode_continue(rv: u64, key: &ObjectKey, namespaced: bool) -> String {
    let start = if namespaced { format!("{}/{}\u{0}", key.0, key.1) } else { format!("{}\u{0}", key.1) };
    let token = json!({ "v": "meta.k8s.io/v1", "rv": rv, "start": start });
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str, namespaced: bool) -> Result<(u64, ObjectKey), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let bytes = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(token))
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if v.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
        return Err(bad());
    }
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let start = start.strip_suffix('\u{0}').unwrap_or(start);
    let key = if namespaced {
        let (ns, name) = start.split_once('/').ok_or_else(bad)?;
        (ns.to_string(), name.to_string())
    } else {
        (String::new(), start.to_string())
    };
    Ok((rv, key))
}

/// An object as served through `version`: `kind` and `apiVersion` first; without them inside
/// lists of built-in types.
pub fn present(obj: &Value, t: &ResourceType, version: &str, list_item: bool) -> Value {
    let Value::Object(m) = obj else { return obj.clone() };
    let mut out = Map::new();
    if !(list_item && t.is_builtin()) {
        out.insert("kind".into(), Value::String(t.kind.clone()));
        out.insert("apiVersion".into(), Value::String(t.api_version(version)));
    }
    for (k, v) in m {
        if k != "kind" && k != "apiVersion" {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str)
}

/// `metadata` as a map, made one if needed. Callers have checked that `obj` is an object;
/// anything else is made an empty object first rather than panicking.
fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// Fields that kube-apiserver's validation refuses to change on update, by type: the first
/// one that differs, and the validation's message. A subset: the selectors of workloads, a Job's
/// template, a Service's allocated cluster IP, a claim's storage class and access modes, and
/// the contents of ConfigMaps and Secrets marked `immutable`.
pub fn immutable_change(group: &str, kind: &str, old: &Value, new: &Value) -> Option<(String, String)> {
    let invalid = |f: &str| {
        let value = new.pointer(f).map(Value::to_string).unwrap_or_else(|| "null".into());
        (f.trim_start_matches('/').replace('/', "."), format!("Invalid value: {value}: field is immutable"))
    };
    let fields: &[&str] = match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => &["/spec/selector"],
        ("apps", "StatefulSet") => &["/spec/selector", "/spec/serviceName", "/spec/volumeClaimTemplates"],
        ("batch", "Job") => &["/spec/selector", "/spec/template", "/spec/completionMode"],
        ("", "PersistentVolumeClaim") => &["/spec/storageClassName", "/spec/accessModes", "/spec/selector"],
        ("", "Service") => {
            let old_ip = old.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or_default();
            let new_ip = new.pointer("/spec/clusterIP").and_then(Value::as_str).unwrap_or_default();
            if !old_ip.is_empty() && !new_ip.is_empty() && old_ip != new_ip {
                return Some(invalid("/spec/clusterIP"));
            }
            &[]
        }
        // As kube-apiserver says it: without the values (they may be secret).
        ("", "ConfigMap" | "Secret") if old.get("immutable") == Some(&Value::Bool(true)) => {
            return ["/data", "/binaryData", "/immutable", "/type"]
                .iter()
                .find(|f| old.pointer(f) != new.pointer(f))
                .map(|f| {
                    (
                        f.trim_start_matches('/').to_string(),
                        "Forbidden: field is immutable when `immutable` is set".to_string(),
                    )
                });
        }
        _ => &[],
    };
    fields.iter().find(|f| old.pointer(f) != new.pointer(f)).map(|f| invalid(f))
}

/// Everything but `metadata` and `status`: what bumps `generation`.
fn spec_part(obj: &Value) -> Value {
    match obj {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The object without the fields a no-op check ignores (the resourceVersion, and the times of
/// managed-fields entries).
fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        if let Some(Value::Array(entries)) = m.get_mut("managedFields") {
            for e in entries {
                if let Value::Object(e) = e {
                    e.remove("time");
                }
            }
        }
    }
    if let Value::Object(m) = &mut o {
        m.remove("apiVersion");
    }
    o
}

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Cluster {
    /// A cluster with the built-in types and no objects.
    pub fn new() -> Self {
        Cluster { registry: RwLock::new(Registry::builtin()), store: Store::new() }
    }

    /// A cluster with the namespaces a new cluster has: `default`, `kube-system`, `kube-public`.
    pub fn with_default_namespaces() -> Self {
        let c = Self::new();
        let t = c.type_of("", "namespaces").unwrap_or_else(|| unreachable!("namespaces are built in"));
        for ns in ["default", "kube-system", "kube-public"] {
            let target =
                Target { rtype: t.clone(), version: "v1".into(), namespace: None, name: None, subresource: None };
            let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            let opts = WriteOptions { user_agent: "kube-apiserver".into(), ..WriteOptions::default() };
            let _ = c.create(&target, body, &opts);
        }
        c
    }

    /// The object store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A copy of the type registry.
    pub fn registry(&self) -> Registry {
        self.registry.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Runs `f` on the registry.
    pub fn with_registry<R>(&self, f: impl FnOnce(&Registry) -> R) -> R {
        f(&self.registry.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.registry.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The type (group, plural).
    pub fn type_of(&self, group: &str, plural: &str) -> Option<ResourceType> {
        self.with_registry(|r| r.get(group, plural).cloned())
    }

    /// Reads an object.
    ///
    /// # Errors
    /// 404 when it does not exist.
    pub fn get(&self, target: &Target) -> Result<Value, ApiError> {
        let obj = self.store.get(&target.gr(), &target.key()).ok_or_else(|| target.not_found())?;
        if target.subresource.as_deref() == Some("scale") {
            return Ok(scale_of(&obj));
        }
        Ok(present(&obj, &target.rtype, &target.version, false))
    }

    /// Lists objects (one page).
    ///
    /// # Errors
    /// 400 for a bad continue token, 410 for one older than the compaction point.
    pub fn list(&self, target: &Target, opts: &ListOptions) -> Result<Value, ApiError> {
        let t = &target.rtype;
        let ns = if t.namespaced { target.namespace.as_deref() } else { None };
        let rv_param = opts.resource_version.as_deref().filter(|s| !s.is_empty());
        let (snapshot_rv, after) = match &opts.continue_token {
            Some(token) if !token.is_empty() => {
                if rv_param.is_some_and(|r| r != "0") {
                    return Err(ApiError::bad_request(
                        "specifying resource version is not allowed when using continue",
                    ));
                }
                let (rv, key) = decode_continue(token, t.namespaced)?;
                (Some(rv), Some(key))
            }
            _ => {
                let rv = match (rv_param, opts.resource_version_match.as_deref()) {
                    (Some(r), Some("Exact")) => Some(
                        r.parse::<u64>()
                            .map_err(|_| ApiError::bad_request(format!("invalid resource version {r:?}")))?,
                    ),
                    (Some(r), _) => {
                        r.parse::<u64>()
                            .map_err(|_| ApiError::bad_request(format!("invalid resource version {r:?}")))?;
                        None
                    }
                    (None, _) => None,
                };
                (rv, None)
            }
        };
        let snap = self.store.snapshot(&target.gr(), ns, snapshot_rv, after.as_ref()).map_err(|c| {
            if after.is_some() {
                ApiError::expired_continue()
            } else {
                ApiError::too_old(snapshot_rv.unwrap_or_default(), c.0)
            }
        })?;
        let filtered = !opts.label_selector.is_empty() || !opts.field_selector.is_empty();
        let mut items = Vec::new();
        let mut last_key = None;
        let mut more = false;
        let mut remaining = 0u64;
        for (key, obj) in &snap.items {
            if opts.limit > 0 && items.len() >= opts.limit {
                more = true;
                remaining += 1;
                continue;
            }
            if opts.label_selector.matches(obj) && opts.field_selector.matches(obj) {
                items.push(present(obj, t, &target.version, true));
                last_key = Some(key.clone());
            }
        }
        let mut metadata = json!({ "resourceVersion": snap.rv.to_string() });
        if more {
            if let Some(k) = &last_key {
                metadata["continue"] = json!(encode_continue(snap.rv, k, t.namespaced));
                if !filtered {
                    metadata["remainingItemCount"] = json!(remaining);
                }
            }
        }
        Ok(json!({
            "kind": format!("{}List", t.kind),
            "apiVersion": t.api_version(&target.version),
            "metadata": metadata,
            "items": items,
        }))
    }

    fn check_body(&self, target: &Target, body: &Value) -> Result<(), ApiError> {
        let t = &target.rtype;
        if !body.is_object() {
            return Err(ApiError::bad_request("the body of the request must be a JSON object"));
        }
        if target.subresource.as_deref() == Some("scale") {
            return Ok(());
        }
        if let Some(kind) = body.get("kind").and_then(Value::as_str) {
            if kind != t.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({kind}) does not match the expected kind ({})",
                    t.kind
                )));
            }
        }
        if let Some(av) = body.get("apiVersion").and_then(Value::as_str) {
            let (g, v) = types::split_api_version(av);
            if g != t.group || !t.versions.iter().any(|x| x == v) {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    t.api_version(&target.version)
                )));
            }
        }
        Ok(())
    }

    fn check_namespace(&self, target: &Target, obj: &mut Value) -> Result<(), ApiError> {
        let t = &target.rtype;
        let meta = meta_mut(obj);
        if !t.namespaced {
            meta.remove("namespace");
            return Ok(());
        }
        let url_ns = target.namespace.clone().unwrap_or_default();
        match meta.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && !url_ns.is_empty() && ns != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            Some(ns) if !ns.is_empty() => {}
            _ => {
                if url_ns.is_empty() {
                    return Err(ApiError::bad_request(
                        "the server could not find the requested resource: a namespace is required",
                    ));
                }
                meta.insert("namespace".into(), json!(url_ns));
            }
        }
        Ok(())
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        self.store.get(&GroupResource::new("", "namespaces"), &(String::new(), ns.to_string())).is_some()
    }

    /// Creates an object (`POST` to a collection).
    ///
    /// # Errors
    /// 400 for a body of the wrong type or namespace, 404 for a missing namespace, 409 when the
    /// name is taken, 422 for a missing name or an invalid CRD.
    pub fn create(&self, target: &Target, body: Value, opts: &WriteOptions) -> Result<Value, ApiError> {
        self.check_body(target, &body)?;
        let t = &target.rtype;
        if t.verbs.len() == 1 && t.has_verb("create") {
            return Ok(review_reply(t, &target.version, body));
        }
        reject_resource_version(&body)?;
        let mut obj = body;
        self.check_namespace(target, &mut obj)?;
        let meta = meta_mut(&mut obj);
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_string(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => {
                    let n = format!("{prefix}{}", util::name_suffix());
                    meta.insert("name".into(), json!(n));
                    n
                }
                _ => {
                    return Err(ApiError::invalid(
                        &t.group,
                        &t.kind,
                        "",
                        "metadata.name",
                        "Required value: name or generateName is required",
                    ))
                }
            },
        };
        if let Some(url_name) = &target.name {
            if url_name != &name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({name}) does not match the name on the URL ({url_name})"
                )));
            }
        }
        validate_name(t, &name)?;
        let ns = meta.get("namespace").and_then(Value::as_str).unwrap_or_default().to_string();
        meta.insert("uid".into(), json!(util::new_uid()));
        meta.insert("creationTimestamp".into(), json!(util::now_rfc3339()));
        for k in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"] {
            meta.remove(k);
        }
        if t.generation {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        if t.has_status() {
            if let Value::Object(m) = &mut obj {
                m.remove("status");
            }
        }
        obj["apiVersion"] = json!(t.api_version(&target.version));
        obj["kind"] = json!(t.kind);
        defaults_on_create(t, &mut obj, &name)?;
        let time = util::now_rfc3339();
        let manager = opts.manager();
        let av = t.api_version(&target.version);
        let writer = Writer { manager: &manager, api_version: &av, subresource: None, time: &time };
        fields::record_update(None, &mut obj, Schema::of(t), &writer, t.has_status());
        self.insert_new(target, &ns, &name, obj, opts)
    }

    /// Stores a new object prepared by `create` or an apply that creates.
    fn insert_new(
        &self,
        target: &Target,
        ns: &str,
        name: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let t = &target.rtype;
        if t.namespaced && !self.namespace_exists(ns) {
            return Err(ApiError::not_found("", "namespaces", ns));
        }
        let gr = target.gr();
        let key = (if t.namespaced { ns.to_string() } else { String::new() }, name.to_string());
        if opts.dry_run {
            if self.store.get(&gr, &key).is_some() {
                return Err(ApiError::already_exists(&t.group, &t.plural, name));
            }
            return Ok(present(&obj, t, &target.version, false));
        }
        let stored = self.store.transaction(|txn| {
            if txn.get(&gr, &key).is_some() {
                return Err(ApiError::already_exists(&t.group, &t.plural, name));
            }
            Ok(txn.put(&gr, &key, obj))
        })?;
        self.after_write(t, &stored);
        Ok(present(&stored, t, &target.version, false))
    }

    /// Replaces an object (`PUT`), or its status or scale.
    ///
    /// # Errors
    /// 404, 409 for a stale resourceVersion, 400 for a body naming another object.
    pub fn update(&self, target: &Target, body: Value, opts: &WriteOptions) -> Result<Value, ApiError> {
        self.check_body(target, &body)?;
        let old = self.store.get(&target.gr(), &target.key()).ok_or_else(|| target.not_found())?;
        let name = target.name.clone().unwrap_or_default();
        if target.subresource.as_deref() == Some("scale") {
            return self.write_scale(target, &old, &body, opts);
        }
        if let Some(body_name) = meta_str(&body, "name") {
            if body_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({body_name}) does not match the name on the URL ({name})"
                )));
            }
        }
        if let (Some(want), Some(actual)) = (meta_str(&body, "uid").filter(|u| !u.is_empty()), meta_str(&old, "uid")) {
            if want != actual {
                let t = &target.rtype;
                return Err(ApiError::conflict(
                    &t.group,
                    &t.plural,
                    &name,
                    &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {actual}"),
                ));
            }
        }
        let mut new = body;
        self.check_namespace(target, &mut new)?;
        let precondition = meta_str(&new, "resourceVersion").filter(|s| !s.is_empty()).map(str::to_string);
        self.replace(target, &old, new, precondition, opts, None)
    }

    /// The common tail of update and patch: carries server fields over, handles status,
    /// generation, managed fields, no-ops and finalizers, and writes.
    fn replace(
        &self,
        target: &Target,
        old: &Arc<Value>,
        mut new: Value,
        precondition: Option<String>,
        opts: &WriteOptions,
        applied: Option<Value>,
    ) -> Result<Value, ApiError> {
        let t = &target.rtype;
        let name = target.name.clone().unwrap_or_default();
        if let Some(rv) = &precondition {
            if meta_str(old, "resourceVersion") != Some(rv.as_str()) {
                return Err(ApiError::stale(&t.group, &t.plural, &name));
            }
        }
        let status_only = target.subresource.as_deref() == Some("status");
        if status_only {
            // Only status changes through /status.
            let status = new.get("status").cloned();
            let mut merged = (**old).clone();
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    if let Value::Object(m) = &mut merged {
                        m.remove("status");
                    }
                }
            }
            new = merged;
        } else if t.has_status() {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Value::Object(m) = &mut new {
                        m.remove("status");
                    }
                }
            }
        }
        {
            let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
            let meta = meta_mut(&mut new);
            for k in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ] {
                match old_meta.get(k) {
                    Some(v) => {
                        meta.insert(k.into(), v.clone());
                    }
                    None => {
                        meta.remove(k);
                    }
                }
            }
            meta.remove("resourceVersion");
            meta.remove("selfLink");
        }
        new["apiVersion"] = json!(t.api_version(&target.version));
        new["kind"] = json!(t.kind);
        if t.generation && !status_only && spec_part(&new) != spec_part(old) {
            let g = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
            meta_mut(&mut new).insert("generation".into(), json!(g + 1));
        }
        if !status_only {
            if let Some((field, why)) = immutable_change(&t.group, &t.kind, old, &new) {
                return Err(ApiError::invalid(&t.group, &t.kind, &name, &field, &why));
            }
        }
        let time = util::now_rfc3339();
        let manager = opts.manager();
        let av = t.api_version(&target.version);
        let writer =
            Writer { manager: &manager, api_version: &av, subresource: status_only.then_some("status"), time: &time };
        let client_managed = new.pointer("/metadata/managedFields").cloned();
        if applied.is_none() {
            let old_managed = old.pointer("/metadata/managedFields").cloned();
            if client_managed.is_some() && client_managed != old_managed {
                // A client that sends other managed fields resets them, as with the real server.
            } else {
                fields::record_update(Some(old), &mut new, Schema::of(t), &writer, t.has_status() && !status_only);
            }
        }
        // An old object whose apiVersion differs only in the request's version is not a change.
        let mut old_cmp = comparable(old);
        if let Value::Object(m) = &mut old_cmp {
            m.insert("kind".into(), json!(t.kind));
        }
        if comparable(&new) == old_cmp {
            return Ok(present(old, t, &target.version, false));
        }
        let finished = old.pointer("/metadata/deletionTimestamp").is_some()
            && new.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(Vec::is_empty);
        if opts.dry_run {
            let mut shown = new;
            if let Some(rv) = meta_str(old, "resourceVersion").map(str::to_string) {
                meta_mut(&mut shown).insert("resourceVersion".into(), json!(rv));
            }
            return Ok(present(&shown, t, &target.version, false));
        }
        let gr = target.gr();
        let key = target.key();
        let old_rv = meta_str(old, "resourceVersion").map(str::to_string);
        let stored = self.store.transaction(|txn| {
            let current = txn.get(&gr, &key).ok_or_else(|| target.not_found())?;
            if meta_str(&current, "resourceVersion").map(str::to_string) != old_rv {
                return Err(ApiError::stale(&t.group, &t.plural, &name));
            }
            let stored = txn.put(&gr, &key, new);
            if finished {
                Ok(txn.delete(&gr, &key).unwrap_or(stored))
            } else {
                Ok(stored)
            }
        })?;
        if finished {
            self.after_delete(t, &stored);
        } else {
            self.after_write(t, &stored);
        }
        Ok(present(&stored, t, &target.version, false))
    }

    /// `PATCH`, in any of the four formats; `true` with the object when an apply created it.
    ///
    /// # Errors
    /// 404 (except for an apply, which creates), 415 for a strategic merge patch of a custom
    /// resource, 422 for a patch that does not apply, 409 for apply conflicts.
    pub fn patch(
        &self,
        target: &Target,
        patch_type: PatchType,
        body: &[u8],
        opts: &WriteOptions,
    ) -> Result<(Value, bool), ApiError> {
        let t = &target.rtype;
        let name = target.name.clone().unwrap_or_default();
        let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the patch is not UTF-8"))?;
        let patch_value = match patch_type {
            PatchType::Apply => {
                crate::yaml::parse_one(text).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
            }
            _ => serde_json::from_str::<Value>(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        };
        if patch_type == PatchType::Strategic && !t.is_builtin() {
            return Err(ApiError::unsupported_media_type(
                "application/strategic-merge-patch+json",
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        let old = self.store.get(&target.gr(), &target.key());
        if patch_type == PatchType::Apply {
            let created = old.is_none();
            return self.apply(target, old, patch_value, opts).map(|v| (v, created));
        }
        let old = old.ok_or_else(|| target.not_found())?;
        let invalid = |e: String| ApiError::new(422, "Invalid", e);
        if target.subresource.as_deref() == Some("scale") {
            let mut scale = scale_of(&old);
            apply_patch(&mut scale, patch_type, &patch_value).map_err(invalid)?;
            return self.write_scale(target, &old, &scale, opts).map(|v| (v, false));
        }
        let mut new = present(&old, t, &target.version, false);
        apply_patch(&mut new, patch_type, &patch_value).map_err(invalid)?;
        if !new.is_object() {
            return Err(invalid("the patched object is not a JSON object".into()));
        }
        if meta_str(&new, "name") != Some(name.as_str()) {
            return Err(ApiError::bad_request(
                "metadata.name: Invalid value: the name of an object cannot be changed by a patch",
            ));
        }
        let precondition = meta_str(&new, "resourceVersion")
            .filter(|rv| Some(*rv) != meta_str(&old, "resourceVersion"))
            .map(str::to_string);
        if precondition.is_some() {
            return Err(ApiError::stale(&t.group, &t.plural, &name));
        }
        self.replace(target, &old, new, None, opts, None).map(|v| (v, false))
    }

    fn apply(
        &self,
        target: &Target,
        old: Option<Arc<Value>>,
        config: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let t = &target.rtype;
        let name = target.name.clone().unwrap_or_default();
        if opts.field_manager.as_deref().is_none_or(str::is_empty) {
            return Err(ApiError::bad_request("PATCH, application/apply-patch+yaml requires fieldManager to be set"));
        }
        if !config.is_object() {
            return Err(ApiError::bad_request("the applied configuration must be an object"));
        }
        for field in ["apiVersion", "kind"] {
            if config.get(field).and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(ApiError::bad_request(format!("invalid object: {field} must be set")));
            }
        }
        self.check_body(target, &config)?;
        if meta_str(&config, "name").is_some_and(|n| n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                meta_str(&config, "name").unwrap_or_default()
            )));
        }
        let status_only = target.subresource.as_deref() == Some("status");
        let drop_status = t.has_status() && !status_only;
        let time = util::now_rfc3339();
        let manager = opts.manager();
        let av = t.api_version(&target.version);
        let writer =
            Writer { manager: &manager, api_version: &av, subresource: status_only.then_some("status"), time: &time };
        let live = old.as_deref().map(|o| present(o, t, &target.version, false));
        let merged = fields::apply(live.as_ref(), &config, Schema::of(t), &writer, opts.force, drop_status).map_err(
            |conflicts| {
                let (message, causes) = fields::conflict_message(&conflicts);
                let mut e = ApiError::new(409, "Conflict", message);
                e.details = Some(Box::new(json!({ "causes": causes })));
                e
            },
        )?;
        match old {
            None => {
                if status_only {
                    return Err(target.not_found());
                }
                reject_resource_version(&config)?;
                let mut obj = merged;
                let ns = target.scope_ns();
                if t.namespaced {
                    meta_mut(&mut obj).insert("namespace".into(), json!(ns));
                }
                let meta = meta_mut(&mut obj);
                meta.insert("name".into(), json!(name));
                meta.insert("uid".into(), json!(util::new_uid()));
                meta.insert("creationTimestamp".into(), json!(util::now_rfc3339()));
                meta.remove("resourceVersion");
                if t.generation {
                    meta.insert("generation".into(), json!(1));
                }
                obj["apiVersion"] = json!(av);
                obj["kind"] = json!(t.kind);
                validate_name(t, &name)?;
                defaults_on_create(t, &mut obj, &name)?;
                self.insert_new(target, &ns, &name, obj, opts)
            }
            Some(old) => {
                let precondition = meta_str(&config, "resourceVersion").filter(|s| !s.is_empty()).map(str::to_string);
                let applied = Some(config);
                self.replace(target, &old, merged, precondition, opts, applied)
            }
        }
    }

    fn write_scale(
        &self,
        target: &Target,
        old: &Arc<Value>,
        scale: &Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let replicas = scale.pointer("/spec/replicas").and_then(Value::as_i64).ok_or_else(|| {
            ApiError::new(422, "Invalid", "Scale.autoscaling \"\" is invalid: spec.replicas: Required value")
        })?;
        let mut new = (**old).clone();
        match new.get_mut("spec") {
            Some(Value::Object(spec)) => {
                spec.insert("replicas".into(), json!(replicas));
            }
            _ => return Err(ApiError::new(422, "Invalid", "spec: Invalid value: the object has no spec to scale")),
        }
        let main = Target { subresource: None, ..target.clone() };
        let updated = self.replace(&main, old, new, None, opts, None)?;
        Ok(scale_of(&updated))
    }

    /// `DELETE` of one object.
    ///
    /// # Errors
    /// 404, or 409 when a precondition fails.
    pub fn delete(&self, target: &Target, opts: &DeleteOptions) -> Result<Value, ApiError> {
        let t = &target.rtype;
        let gr = target.gr();
        let key = target.key();
        let name = key.1.clone();
        let old = self.store.get(&gr, &key).ok_or_else(|| target.not_found())?;
        if let Some(uid) = &opts.uid {
            let actual = meta_str(&old, "uid").unwrap_or_default();
            if actual != uid {
                return Err(ApiError::conflict(
                    &t.group,
                    &t.plural,
                    &name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                ));
            }
        }
        if let Some(rv) = &opts.resource_version {
            let actual = meta_str(&old, "resourceVersion").unwrap_or_default();
            if actual != rv {
                return Err(ApiError::conflict(&t.group, &t.plural, &name, &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}")));
            }
        }
        let has_finalizers =
            old.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
        if opts.dry_run {
            return Ok(present(&old, t, &target.version, false));
        }
        if has_finalizers {
            if old.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(present(&old, t, &target.version, false));
            }
            let mut marked = (*old).clone();
            let meta = meta_mut(&mut marked);
            meta.insert("deletionTimestamp".into(), json!(util::now_rfc3339()));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            let stored = self.store.transaction(|txn| txn.put(&gr, &key, marked));
            return Ok(present(&stored, t, &target.version, false));
        }
        let gone = self.store.transaction(|txn| txn.delete(&gr, &key)).ok_or_else(|| target.not_found())?;
        self.after_delete(t, &gone);
        Ok(present(&gone, t, &target.version, false))
    }

    /// `DELETE` of a collection: every object matching the selectors.
    ///
    /// # Errors
    /// As [`Cluster::list`].
    pub fn delete_collection(
        &self,
        target: &Target,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let all = ListOptions {
            limit: 0,
            continue_token: None,
            resource_version: None,
            resource_version_match: None,
            ..list.clone()
        };
        let mut listed = self.list(target, &all)?;
        let items = listed.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
        let mut deleted = Vec::new();
        for item in items {
            let Some(name) = meta_str(&item, "name") else { continue };
            let one = Target {
                name: Some(name.to_string()),
                namespace: meta_str(&item, "namespace").map(str::to_string).or_else(|| target.namespace.clone()),
                ..target.clone()
            };
            if let Ok(v) = self.delete(&one, opts) {
                deleted.push(v);
            }
        }
        listed["items"] = Value::Array(deleted);
        Ok(listed)
    }

    /// Side effects of a stored write: CRDs register their resource.
    fn after_write(&self, t: &ResourceType, obj: &Value) {
        if t.group == "apiextensions.k8s.io" && t.plural == "customresourcedefinitions" {
            if let Ok(crd_type) = types::type_from_crd(obj) {
                self.registry_mut().insert(crd_type);
            }
        }
    }

    /// Side effects of a delete: a CRD takes its resource and objects along; a namespace its
    /// objects.
    fn after_delete(&self, t: &ResourceType, obj: &Value) {
        if t.group == "apiextensions.k8s.io" && t.plural == "customresourcedefinitions" {
            if let Ok(crd_type) = types::type_from_crd(obj) {
                self.registry_mut().remove(&crd_type.group, &crd_type.plural);
                let gr = GroupResource::new(&crd_type.group, &crd_type.plural);
                self.store.transaction(|txn| {
                    for (key, _) in txn.list_latest(&gr, None) {
                        txn.delete(&gr, &key);
                    }
                });
            }
        }
        if t.group.is_empty() && t.plural == "namespaces" {
            let Some(ns) = meta_str(obj, "name") else { return };
            let namespaced: Vec<GroupResource> = self.with_registry(|r| {
                r.types().iter().filter(|x| x.namespaced).map(|x| GroupResource::new(&x.group, &x.plural)).collect()
            });
            self.store.transaction(|txn| {
                for gr in &namespaced {
                    for (key, _) in txn.list_latest(gr, Some(ns)) {
                        txn.delete(gr, &key);
                    }
                }
            });
        }
    }

    /// Stores a fixture object as given: the type is found by `apiVersion`/`kind` (a CRD among
    /// the fixtures must be loaded first to be used), or implied; `uid`, `creationTimestamp` and
    /// `resourceVersion` are assigned only where absent.
    ///
    /// # Errors
    /// Why the object cannot be loaded.
    pub fn load_object(&self, mut obj: Value) -> Result<(), String> {
        let api_version =
            obj.get("apiVersion").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or("no apiVersion")?.to_string();
        let kind = obj.get("kind").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or("no kind")?.to_string();
        let name = meta_str(&obj, "name").filter(|s| !s.is_empty()).ok_or("no metadata.name")?.to_string();
        let ns = meta_str(&obj, "namespace").unwrap_or_default().to_string();
        let (group, version) = types::split_api_version(&api_version);
        let t = {
            let mut reg = self.registry_mut();
            match reg.by_kind(group, &kind).cloned() {
                Some(mut t) => {
                    if t.origin == Origin::Implied && !t.versions.iter().any(|v| v == version) {
                        t.versions.push(version.to_string());
                        t.versions.sort_by(|a, b| types::version_order(a, b));
                        reg.insert(t.clone());
                    }
                    t
                }
                None => {
                    let t = types::implied_type(group, version, &kind, !ns.is_empty());
                    if reg.get(&t.group, &t.plural).is_some() {
                        return Err(format!(
                            "{kind}.{group}: its guessed resource name {} is taken by another kind",
                            t.plural
                        ));
                    }
                    reg.insert(t.clone());
                    t
                }
            }
        };
        let meta = meta_mut(&mut obj);
        if meta.get("uid").and_then(Value::as_str).is_none_or(str::is_empty) {
            meta.insert("uid".into(), json!(util::new_uid()));
        }
        if meta.get("creationTimestamp").and_then(Value::as_str).is_none_or(str::is_empty) {
            meta.insert("creationTimestamp".into(), json!(util::now_rfc3339()));
        }
        let key = (if t.namespaced { ns } else { String::new() }, name);
        let gr = GroupResource::new(&t.group, &t.plural);
        self.store.transaction(|txn| txn.load(&gr, &key, obj.clone()));
        self.after_write(&t, &obj);
        Ok(())
    }
}

/// Direct access for tests: the same code paths as the API, without HTTP.
impl Cluster {
    fn target_for(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Result<Target, ApiError> {
        let rtype = self
            .type_of(group, resource)
            .ok_or_else(|| ApiError::not_found(group, resource, name.unwrap_or_default()))?;
        let version = rtype.preferred_version().to_string();
        Ok(Target {
            rtype,
            version,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: None,
        })
    }

    /// An object, as `GET` returns it (preferred version).
    pub fn get_object(&self, group: &str, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.target_for(group, resource, namespace, Some(name)).ok().and_then(|t| self.get(&t).ok())
    }

    /// Every object of a resource in every namespace, as a list returns them (without
    /// `apiVersion`/`kind` for built-in types).
    pub fn list_objects(&self, group: &str, resource: &str) -> Vec<Value> {
        self.target_for(group, resource, None, None)
            .and_then(|t| self.list(&t, &ListOptions::default()))
            .ok()
            .and_then(|l| l.get("items").and_then(Value::as_array).cloned())
            .unwrap_or_default()
    }

    /// Creates or replaces an object from its `apiVersion`, `kind` and metadata, as a
    /// controller would: a create or update of the object, then of its status when the type
    /// has a status subresource. Watches see the changes. The manager is `testserver`.
    ///
    /// # Errors
    /// As create and update.
    pub fn put_object(&self, obj: Value) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request("an object must be a JSON object"));
        }
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        let (group, _) = types::split_api_version(&av);
        let rtype = self
            .with_registry(|r| r.by_kind(group, &kind).cloned())
            .ok_or_else(|| ApiError::bad_request(format!("no type serves {av} {kind}")))?;
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        let namespace = meta_str(&obj, "namespace").map(str::to_string);
        let mut target = self.target_for(&rtype.group, &rtype.plural, namespace.as_deref(), Some(&name))?;
        let opts = WriteOptions { field_manager: Some("testserver".into()), ..WriteOptions::default() };
        let mut body = obj.clone();
        meta_mut(&mut body).remove("resourceVersion");
        body["apiVersion"] = json!(rtype.api_version(&target.version));
        let written = if self.store.get(&target.gr(), &target.key()).is_some() {
            self.update(&target, body.clone(), &opts)?
        } else {
            let create_target = Target { name: None, ..target.clone() };
            self.create(&create_target, body.clone(), &opts)?
        };
        match obj.get("status") {
            Some(status) if rtype.has_status() && written.get("status") != Some(status) => {
                target.subresource = Some("status".into());
                let mut with_status = written;
                with_status["status"] = status.clone();
                meta_mut(&mut with_status).remove("resourceVersion");
                self.update(&target, with_status, &opts)
            }
            _ => Ok(written),
        }
    }

    /// Deletes an object (honouring finalizers, as `DELETE` does).
    ///
    /// # Errors
    /// 404 when it does not exist.
    pub fn delete_object(
        &self,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let t = self.target_for(group, resource, namespace, Some(name))?;
        self.delete(&t, &DeleteOptions::default())
    }

    /// Compacts the store at its current resourceVersion: every older continue token and
    /// watch position now gets 410.
    pub fn compact(&self) {
        self.store.compact(self.store.resource_version());
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.store.resource_version()
    }
}

/// etcd3's store refuses to create an object whose resourceVersion parses as a non-zero
/// number, with an untyped error: a 500 without a reason.
fn reject_resource_version(obj: &Value) -> Result<(), ApiError> {
    if meta_str(obj, "resourceVersion").and_then(|rv| rv.parse::<u64>().ok()).is_some_and(|rv| rv != 0) {
        return Err(ApiError::new(500, "", "resourceVersion should not be set on objects to be created"));
    }
    Ok(())
}

/// Namespace defaults and CRD validation and status, as their strategies do on create.
fn defaults_on_create(t: &ResourceType, obj: &mut Value, name: &str) -> Result<(), ApiError> {
    match (t.group.as_str(), t.plural.as_str()) {
        ("", "namespaces") => {
            let meta = meta_mut(obj);
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Value::Object(l) = labels {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
            if !obj.get("spec").is_some_and(Value::is_object) {
                obj["spec"] = json!({});
            }
            if let Some(Value::Object(spec)) = obj.get_mut("spec") {
                spec.entry("finalizers").or_insert_with(|| json!(["kubernetes"]));
            }
            obj["status"] = json!({ "phase": "Active" });
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            let crd = types::type_from_crd(obj).map_err(|e| {
                let (field, why) = e.split_once(": ").unwrap_or(("spec", e.as_str()));
                ApiError::invalid(&t.group, &t.kind, name, field, why)
            })?;
            let want = format!("{}.{}", crd.plural, crd.group);
            if want != name {
                return Err(ApiError::invalid(
                    &t.group,
                    &t.kind,
                    name,
                    "metadata.name",
                    &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
                ));
            }
            let now = util::now_rfc3339();
            let storage = obj
                .pointer("/spec/versions")
                .and_then(Value::as_array)
                .and_then(|vs| vs.iter().find(|v| v.get("storage").and_then(Value::as_bool) == Some(true)))
                .and_then(|v| v.get("name"))
                .cloned()
                .unwrap_or_else(|| json!(crd.preferred_version()));
            let names = obj.pointer("/spec/names").cloned().unwrap_or_else(|| json!({}));
            let mut accepted = names.clone();
            if accepted.get("singular").is_none() {
                accepted["singular"] = json!(crd.singular);
            }
            if accepted.get("listKind").is_none() {
                accepted["listKind"] = json!(format!("{}List", crd.kind));
            }
            obj["status"] = json!({
                "conditions": [
                    { "type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts", "message": "no conflicts found" },
                    { "type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted" },
                ],
                "acceptedNames": accepted,
                "storedVersions": [storage],
            });
        }
        _ => {}
    }
    Ok(())
}

/// Names Kubernetes could never store: empty, `.`, `..`, or containing `/` or `%`.
fn validate_name(t: &ResourceType, name: &str) -> Result<(), ApiError> {
    if name == "." || name == ".." || name.contains('/') || name.contains('%') || name.len() > 253 {
        return Err(ApiError::invalid(
            &t.group,
            &t.kind,
            name,
            "metadata.name",
            &format!("Invalid value: \"{name}\": may not contain '/' or '%', nor be '.' or '..'"),
        ));
    }
    Ok(())
}

/// The reply of a create-only review type (`SelfSubjectAccessReview`...): everything allowed.
fn review_reply(t: &ResourceType, version: &str, mut body: Value) -> Value {
    match t.kind.as_str() {
        "SelfSubjectAccessReview" | "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            body["status"] = json!({ "allowed": true, "reason": "kubesnap-testserver allows everything" });
        }
        "SelfSubjectReview" => {
            body["status"] =
                json!({ "userInfo": { "username": "system:anonymous", "groups": ["system:unauthenticated"] } });
        }
        "TokenReview" => {
            body["status"] = json!({ "authenticated": false });
        }
        _ => {}
    }
    present(&body, t, version, false)
}

/// The `autoscaling/v1` `Scale` of an object with `spec.replicas`.
fn scale_of(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let selector = obj
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .or_else(|| obj.pointer("/spec/selector").and_then(Value::as_object))
        .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}"))).collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"), "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": { "replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1)) },
        "status": { "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector },
    })
}

fn apply_patch(target: &mut Value, patch_type: PatchType, patch_value: &Value) -> Result<(), String> {
    match patch_type {
        PatchType::Merge => {
            if !patch_value.is_object() {
                return Err("a merge patch must be an object".into());
            }
            patch::merge_patch(target, patch_value);
            Ok(())
        }
        PatchType::Json => patch::json_patch(target, patch_value),
        PatchType::Strategic => patch::strategic_merge_patch(target, patch_value),
        PatchType::Apply => Err("apply is not a plain patch".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let cases: &[(u64, (&str, &str), bool)] =
            &[(5, ("ns", "a"), true), (9, ("", "node-1"), false), (1, ("($x)", "a/b"), true)];
        for (rv, (ns, name), namespaced) in cases {
            let key = (ns.to_string(), name.to_string());
            let token = encode_continue(*rv, &key, *namespaced);
            assert_eq!(decode_continue(&token, *namespaced).ok(), Some((*rv, key)));
        }
        assert!(decode_continue("garbage", true).is_err());
        assert!(decode_continue(&base64::engine::general_purpose::STANDARD.encode("{\"v\":\"x\"}"), true).is_err());
    }
}

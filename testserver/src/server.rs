//! The HTTP side: kube-apiserver's URL layout, discovery, content negotiation, watches, faults
//! and the request log, over HTTP/1.1 on a plain TCP socket (hyper).
//!
//! Served paths: `/version`, `/healthz`, `/livez`, `/readyz`; `/api`, `/api/v1`, `/apis`,
//! `/apis/{group}`, `/apis/{group}/{version}` (legacy discovery, or aggregated v2 when the
//! Accept header asks for `as=APIGroupDiscoveryList;v=v2` and the server allows it);
//! `/api/v1/...` and `/apis/{g}/{v}/...` for objects (`namespaces/{ns}/` for namespaced ones,
//! `/watch/` prefixes too); `/testserver/faults` and `/testserver/requests` for control.
//!
//! Watches stream one JSON event per line (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`, `ERROR`)
//! over a chunked reply; without a resourceVersion (or with `0`) they start with the current
//! objects as `ADDED`; `sendInitialEvents=true` ends those with the
//! `k8s.io/initial-events-end` bookmark; an object leaving a selector is `DELETED`, one entering
//! it `ADDED`; a compacted resourceVersion gives one `ERROR` event with a 410 `Status`.
//!
//! `/openapi/v3` serves the skeleton documents of [`crate::openapi`], which make kubectl
//! validate on the server instead of downloading `/openapi/v2`.
//!
//! Differences: no `/openapi/v2` (with `Options::serve_openapi` off, kubectl needs
//! `--validate=false`), no authentication or authorization, JSON
//! only (no protobuf, no CBOR), `Table` replies only in the minimal form described in
//! [`table`], no HTTP/2.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::cluster::{self, Cluster, DeleteOptions, ListOptions, PatchType, Target, WriteOptions};
use crate::faults::{Fault, FaultAction, FaultId, FaultTarget, Faults, RequestLog, RequestRecord};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{ChangeType, GroupResource};
use crate::util;

/// Bodies larger than this are refused with 413, as kube-apiserver refuses bodies over 3 MiB
/// (this limit is larger, for big CRDs).
const MAX_BODY: usize = 32 << 20;

const PATCH_TYPES: &str = "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json";

/// Settings of the HTTP side.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whether aggregated (v2) discovery is served.
    pub aggregated_discovery: bool,
    /// Interval between watch bookmarks (when asked for).
    pub bookmark_interval: Duration,
    /// The `gitVersion` `/version` reports (`v1.33.1`).
    pub kubernetes_version: String,
    /// Whether `Table` replies are served when asked for.
    pub serve_tables: bool,
    /// Whether the skeleton OpenAPI v3 documents are served (see [`crate::openapi`]).
    pub serve_openapi: bool,
}

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Shared {
    /// Types and objects.
    pub cluster: Cluster,
    /// Active faults.
    pub faults: Faults,
    /// The request log.
    pub log: RequestLog,
    /// Settings.
    pub settings: Settings,
    /// `http://127.0.0.1:port`, once bound.
    pub address: std::sync::OnceLock<String>,
}

/// A reply body: whole, streamed (watches), or cut short (the truncation fault).
pub enum Body {
    /// The whole body at once.
    Full(Option<Bytes>),
    /// Chunks from a channel; an `Err` aborts the connection.
    Stream(mpsc::Receiver<Result<Bytes, std::io::Error>>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            Body::Full(Some(b)) => hyper::body::SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => hyper::body::SizeHint::with_exact(0),
            Body::Stream(_) => hyper::body::SizeHint::default(),
        }
    }
}

/// The error a handler returns to make hyper close the connection without a reply.
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by a fault")
    }
}

impl std::error::Error for DropConnection {}

fn json_response(code: u16, value: &Value) -> Response<Body> {
    json_bytes_response(code, serde_json::to_vec(value).unwrap_or_default(), "application/json")
}

fn json_bytes_response(code: u16, bytes: Vec<u8>, content_type: &str) -> Response<Body> {
    let mut r = Response::new(Body::Full(Some(Bytes::from(bytes))));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_str(content_type).unwrap_or(HeaderValue::from_static("application/json")),
    );
    r
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(secs) = e.retry_after {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// What the path names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    ResourceList(String, String),
    Resource {
        group: String,
        version: String,
        namespace: Option<String>,
        resource: String,
        name: Option<String>,
        subresource: Option<String>,
        watch: bool,
    },
    Control(String),
    OpenApi(Option<String>),
    NotFound,
}

fn route(path: &str) -> Route {
    let segs: Vec<String> =
        path.trim_matches('/').split('/').filter(|s| !s.is_empty()).map(|s| util::percent_decode(s, false)).collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["testserver", rest @ ..] => Route::Control(rest.join("/")),
        ["openapi", "v3"] => Route::OpenApi(None),
        ["openapi", "v3", rest @ ..] => Route::OpenApi(Some(rest.join("/"))),
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group((*g).to_string()),
        ["api", v] => Route::ResourceList(String::new(), (*v).to_string()),
        ["apis", g, v] => Route::ResourceList((*g).to_string(), (*v).to_string()),
        ["api", v, rest @ ..] => resource_route("", v, rest),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    // `/api/v1/namespaces/{name}/status` is the namespace's own subresource, not a resource
    // named "status" in that namespace.
    let namespace_subresource = |r: &[&str]| group.is_empty() && matches!(r, ["status" | "finalize"]);
    let (namespace, rest) = match rest {
        ["namespaces", ns, r @ ..] if !r.is_empty() && !namespace_subresource(r) => (Some((*ns).to_string()), r),
        r => (None, r),
    };
    let (resource, name, subresource) = match rest {
        [r] => (*r, None, None),
        [r, n] => (*r, Some((*n).to_string()), None),
        [r, n, sub] => (*r, Some((*n).to_string()), Some((*sub).to_string())),
        _ => return Route::NotFound,
    };
    Route::Resource {
        group: group.into(),
        version: version.into(),
        namespace,
        resource: resource.into(),
        name,
        subresource,
        watch,
    }
}

/// The parsed query string.
struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }

    fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | ""))
    }

    fn dry_run(&self) -> bool {
        self.0.iter().any(|(k, v)| k == "dryRun" && v == "All")
    }
}

fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}

fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|part| part.split(';').any(|p| p.trim() == "as=Table"))
}

/// Serves one request (the hyper service).
///
/// # Errors
/// [`DropConnection`] for the dropped-connection fault.
pub async fn serve(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, DropConnection> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query_text = req.uri().query().unwrap_or_default().to_string();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let accept = header("accept");
    let content_type = header("content-type");
    let user_agent = header("user-agent");
    let mut record = RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        query: query_text.clone(),
        status: 0,
        verb: None,
        group: None,
        resource: None,
        user_agent: user_agent.clone(),
        fault: None,
    };
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let resp = error_response(&ApiError::new(
                413,
                "RequestEntityTooLarge",
                "Request entity too large: limit is 33554432",
            ));
            record.status = 413;
            shared.log.push(record);
            return Ok(resp);
        }
        Err(_) => {
            shared.log.push(record);
            return Err(DropConnection);
        }
    };
    let query = Query(util::parse_query(&query_text));
    let request = Incoming_ { method, path, query, accept, content_type, user_agent, body };
    let result = handle(&shared, &request, &mut record).await;
    record.status = match &result {
        Ok(r) => r.status().as_u16(),
        Err(DropConnection) => 0,
    };
    shared.log.push(record);
    result
}

/// A request, read.
struct Incoming_ {
    method: Method,
    path: String,
    query: Query,
    accept: String,
    content_type: String,
    user_agent: String,
    body: Bytes,
}

async fn handle(
    shared: &Arc<Shared>,
    req: &Incoming_,
    record: &mut RequestRecord,
) -> Result<Response<Body>, DropConnection> {
    let r = route(&req.path);
    if !matches!(r, Route::Resource { .. } | Route::Control(_))
        && req.method != Method::GET
        && req.method != Method::HEAD
    {
        return Ok(error_response(&ApiError::method_not_allowed()));
    }
    Ok(match r {
        Route::Version => json_response(200, &version_json(&shared.settings.kubernetes_version)),
        Route::Health => {
            let mut resp = json_bytes_response(200, b"ok".to_vec(), "text/plain; charset=utf-8");
            resp.headers_mut().insert("x-content-type-options", HeaderValue::from_static("nosniff"));
            resp
        }
        Route::CoreVersions => {
            if shared.settings.aggregated_discovery && wants_aggregated(&req.accept) {
                aggregated_response(&shared.cluster.with_registry(|r| r.aggregated(true)))
            } else {
                let addr =
                    shared.address.get().map(|a| a.trim_start_matches("http://").to_string()).unwrap_or_default();
                json_response(200, &shared.cluster.with_registry(|r| r.api_versions(&addr)))
            }
        }
        Route::Groups => {
            if shared.settings.aggregated_discovery && wants_aggregated(&req.accept) {
                aggregated_response(&shared.cluster.with_registry(|r| r.aggregated(false)))
            } else {
                json_response(200, &shared.cluster.with_registry(Registry_::api_group_list))
            }
        }
        Route::Group(g) => match shared.cluster.with_registry(|r| r.api_group(&g)) {
            Some(v) => json_response(200, &v),
            None => error_response(&ApiError::path_not_found()),
        },
        Route::ResourceList(g, v) => match shared.cluster.with_registry(|r| r.api_resource_list(&g, &v)) {
            Some(v) => json_response(200, &v),
            None => error_response(&ApiError::path_not_found()),
        },
        Route::Control(what) => control(shared, req, &what),
        Route::OpenApi(_) if !shared.settings.serve_openapi => error_response(&ApiError::path_not_found()),
        Route::OpenApi(None) => json_response(
            200,
            &shared.cluster.with_registry(|r| crate::openapi::root(r, &shared.settings.kubernetes_version)),
        ),
        Route::OpenApi(Some(rest)) => match shared
            .cluster
            .with_registry(|r| crate::openapi::by_path(r, &rest, &shared.settings.kubernetes_version))
        {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::path_not_found()),
        },
        Route::NotFound => error_response(&ApiError::path_not_found()),
        Route::Resource { group, version, namespace, resource, name, subresource, watch } => {
            let Some(rtype) = shared.cluster.with_registry(|r| r.get_served(&group, &version, &resource).cloned())
            else {
                return Ok(error_response(&ApiError::path_not_found()));
            };
            if rtype.namespaced && namespace.is_none() && name.is_some() {
                return Ok(error_response(&ApiError::path_not_found()));
            }
            if !rtype.namespaced && namespace.is_some() {
                return Ok(error_response(&ApiError::path_not_found()));
            }
            if let Some(sub) = &subresource {
                if !rtype.subresources.iter().any(|s| s == sub) {
                    return Ok(error_response(&ApiError::path_not_found()));
                }
            }
            let watch = watch || req.query.flag("watch");
            let verb = match (&req.method, name.is_some(), watch) {
                (&Method::GET | &Method::HEAD, _, true) => "watch",
                (&Method::GET | &Method::HEAD, true, false) => "get",
                (&Method::GET | &Method::HEAD, false, false) => "list",
                (&Method::POST, false, _) => "create",
                (&Method::PUT, true, _) => "update",
                (&Method::PATCH, true, _) => "patch",
                (&Method::DELETE, true, _) => "delete",
                (&Method::DELETE, false, _) => "deletecollection",
                _ => return Ok(error_response(&ApiError::method_not_allowed())),
            };
            record.verb = Some(verb.to_string());
            record.group = Some(group.clone());
            record.resource = Some(resource.clone());
            let verb_allowed =
                if subresource.is_some() { matches!(verb, "get" | "update" | "patch") } else { rtype.has_verb(verb) };
            if !verb_allowed {
                return Ok(error_response(&ApiError::method_not_allowed()));
            }
            let target = Target { rtype, version, namespace, name, subresource };
            let has_continue = req.query.get("continue").is_some_and(|c| !c.is_empty());
            let fault = shared.faults.check(&FaultTarget { group: &group, resource: &resource, verb, has_continue });
            record.fault = fault.as_ref().map(|f| format!("{f:?}"));
            let forbidden = || {
                ApiError::forbidden(
                    &group,
                    &resource,
                    target.name.as_deref().unwrap_or_default(),
                    verb,
                    target.namespace.as_deref(),
                )
            };
            match fault {
                Some(FaultAction::Forbidden) => return Ok(error_response(&forbidden())),
                Some(FaultAction::Gone) => return Ok(error_response(&ApiError::expired_continue())),
                Some(FaultAction::TooManyRequests { retry_after_seconds }) => {
                    return Ok(error_response(&ApiError::too_many_requests(retry_after_seconds)))
                }
                Some(FaultAction::InternalError) => {
                    return Ok(error_response(&ApiError::internal("an injected fault")))
                }
                Some(FaultAction::Status { code }) => {
                    let reason = StatusCode::from_u16(code)
                        .ok()
                        .and_then(|c| c.canonical_reason())
                        .unwrap_or("Unknown")
                        .replace(' ', "");
                    return Ok(error_response(&ApiError::new(code, &reason, format!("an injected fault ({code})"))));
                }
                Some(FaultAction::DropConnection) => return Err(DropConnection),
                Some(FaultAction::MalformedBody) => {
                    return Ok(json_bytes_response(
                        200,
                        b"{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"items\":[{\"metadata\":"
                            .to_vec(),
                        "application/json",
                    ));
                }
                Some(FaultAction::Delay { millis }) => tokio::time::sleep(Duration::from_millis(millis)).await,
                Some(FaultAction::TruncatedBody) | None => {}
            }
            let truncate = matches!(record.fault.as_deref(), Some(f) if f.starts_with("TruncatedBody"));
            if verb == "watch" {
                watch_response(shared, target, &req.query, truncate)
            } else {
                let resp = resource_request(shared, req, &target, verb);
                if truncate {
                    truncated(resp)
                } else {
                    resp
                }
            }
        }
    })
}

type Registry_ = crate::types::Registry;

fn version_json(git_version: &str) -> Value {
    let trimmed = git_version.trim_start_matches('v');
    let mut parts = trimmed.split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("33");
    json!({
        "major": major, "minor": minor, "emulationMajor": major, "emulationMinor": minor,
        "minCompatibilityMajor": major, "minCompatibilityMinor": minor,
        "gitVersion": git_version, "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2025-05-15T00:00:00Z", "goVersion": "go1.24.2", "compiler": "gc", "platform": "linux/amd64",
    })
}

fn aggregated_response(v: &Value) -> Response<Body> {
    json_bytes_response(
        200,
        serde_json::to_vec(v).unwrap_or_default(),
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
    )
}

/// The truncation fault: the headers promise the whole body, half of it comes, then the
/// connection is closed.
fn truncated(resp: Response<Body>) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    let Body::Full(Some(bytes)) = body else { return Response::from_parts(parts, body) };
    let (tx, rx) = mpsc::channel(2);
    let half = bytes.slice(..bytes.len() / 2);
    parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    tokio::spawn(async move {
        let _ = tx.send(Ok(half)).await;
        // Let hyper flush the headers and the first half before the connection is aborted.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = tx.send(Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "truncated by a fault"))).await;
    });
    Response::from_parts(parts, Body::Stream(rx))
}

fn parse_body(req: &Incoming_) -> Result<Value, ApiError> {
    let ct = req.content_type.split(';').next().unwrap_or_default().trim();
    if ct.contains("protobuf") || ct.contains("cbor") {
        return Err(ApiError::unsupported_media_type(ct, "application/json, application/yaml"));
    }
    let text = std::str::from_utf8(&req.body).map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
    match ct {
        "" | "application/json" | "*/*" => {
            serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))
        }
        "application/yaml" | "application/x-yaml" | "text/yaml" => {
            crate::yaml::parse_one(text).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        }
        other => Err(ApiError::unsupported_media_type(other, "application/json, application/yaml")),
    }
}

fn list_options(q: &Query, target: &Target) -> Result<ListOptions, ApiError> {
    let limit = match q.get("limit") {
        Some(l) if !l.is_empty() => {
            l.parse::<i64>().map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?.max(0)
        }
        _ => 0,
    };
    Ok(ListOptions {
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
        continue_token: q.get("continue").map(str::to_string),
        resource_version: q.get("resourceVersion").map(str::to_string),
        resource_version_match: q.get("resourceVersionMatch").map(str::to_string),
        label_selector: LabelSelector::parse(q.get("labelSelector").unwrap_or_default())
            .map_err(ApiError::bad_request)?,
        field_selector: FieldSelector::parse(
            q.get("fieldSelector").unwrap_or_default(),
            &target.rtype.group,
            &target.rtype.plural,
        )
        .map_err(ApiError::bad_request)?,
    })
}

fn write_options(req: &Incoming_) -> WriteOptions {
    WriteOptions {
        dry_run: req.query.dry_run(),
        field_manager: req.query.get("fieldManager").map(str::to_string),
        user_agent: req.user_agent.clone(),
        force: req.query.flag("force"),
    }
}

fn delete_options(req: &Incoming_) -> Result<DeleteOptions, ApiError> {
    let mut opts = DeleteOptions { dry_run: req.query.dry_run(), ..DeleteOptions::default() };
    if !req.body.is_empty() {
        let body = parse_body(req)?;
        if body.get("dryRun").and_then(Value::as_array).is_some_and(|a| a.iter().any(|v| v == "All")) {
            opts.dry_run = true;
        }
        opts.uid = body.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string);
        opts.resource_version =
            body.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string);
    }
    Ok(opts)
}

fn resource_request(shared: &Arc<Shared>, req: &Incoming_, target: &Target, verb: &str) -> Response<Body> {
    let c = &shared.cluster;
    let mut created = verb == "create";
    let result = match verb {
        "get" => c.get(target),
        "list" => list_options(&req.query, target).and_then(|o| c.list(target, &o)),
        "create" => parse_body(req).and_then(|b| c.create(target, b, &write_options(req))),
        "update" => parse_body(req).and_then(|b| c.update(target, b, &write_options(req))),
        "patch" => match PatchType::from_content_type(&req.content_type) {
            Some(pt) => c.patch(target, pt, &req.body, &write_options(req)).map(|(v, was_created)| {
                created = was_created;
                v
            }),
            None => Err(ApiError::unsupported_media_type(&req.content_type, PATCH_TYPES)),
        },
        "delete" => delete_options(req).and_then(|o| c.delete(target, &o)),
        "deletecollection" => list_options(&req.query, target)
            .and_then(|l| delete_options(req).and_then(|o| c.delete_collection(target, &l, &o))),
        _ => Err(ApiError::method_not_allowed()),
    };
    match result {
        Ok(v) => {
            let code = if created { 201 } else { 200 };
            if shared.settings.serve_tables && wants_table(&req.accept) && matches!(verb, "get" | "list") {
                json_response(code, &table::to_table(&v, verb == "list"))
            } else {
                json_response(code, &v)
            }
        }
        Err(e) => error_response(&e),
    }
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({ "type": kind, "object": object })).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn watch_response(shared: &Arc<Shared>, target: Target, q: &Query, truncate: bool) -> Response<Body> {
    let opts = match list_options(q, &target) {
        Ok(o) => o,
        Err(e) => return error_response(&e),
    };
    let bookmarks = q.flag("allowWatchBookmarks");
    let send_initial = q.get("sendInitialEvents").map(|v| v == "true");
    let timeout = q.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).map(Duration::from_secs);
    let rv_param = q.get("resourceVersion").filter(|s| !s.is_empty()).map(str::to_string);
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let shared = shared.clone();
    let store_rx = shared.cluster.store().subscribe();
    let interval = shared.settings.bookmark_interval;
    tokio::spawn(async move {
        let _ = run_watch(
            &shared,
            &target,
            opts,
            rv_param,
            send_initial,
            bookmarks,
            timeout,
            interval,
            store_rx,
            &tx,
            truncate,
        )
        .await;
    });
    let mut r = Response::new(Body::Stream(rx));
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Feeds a watch until the client goes away, the timeout passes, or the server stops.
#[allow(clippy::too_many_arguments)] // reason: one watch's parameters, used once
async fn run_watch(
    shared: &Shared,
    target: &Target,
    opts: ListOptions,
    rv_param: Option<String>,
    send_initial: Option<bool>,
    bookmarks: bool,
    timeout: Option<Duration>,
    interval: Duration,
    mut store_rx: tokio::sync::watch::Receiver<u64>,
    tx: &mpsc::Sender<Result<Bytes, std::io::Error>>,
    truncate: bool,
) -> Result<(), ()> {
    let t = &target.rtype;
    let gr = GroupResource::new(&t.group, &t.plural);
    let ns = if t.namespaced { target.namespace.clone() } else { None };
    let matches = |o: &Value| opts.label_selector.matches(o) && opts.field_selector.matches(o);
    let send = |b: Bytes| async move {
        if truncate {
            let half = b.slice(..b.len() / 2);
            let _ = tx.send(Ok(half)).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ =
                tx.send(Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "truncated by a fault"))).await;
            return Err(());
        }
        tx.send(Ok(b)).await.map_err(|_| ())
    };
    let bookmark = |rv: u64, end_of_initial: bool| {
        let mut meta = json!({ "resourceVersion": rv.to_string() });
        if end_of_initial {
            meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
        }
        event_line(
            "BOOKMARK",
            &json!({ "kind": t.kind, "apiVersion": t.api_version(&target.version), "metadata": meta }),
        )
    };
    let initial = match (&send_initial, rv_param.as_deref()) {
        (Some(b), _) => *b,
        (None, None | Some("0")) => true,
        (None, Some(_)) => false,
    };
    let mut position = if initial {
        let snap = match shared.cluster.store().snapshot(&gr, ns.as_deref(), None, None) {
            Ok(s) => s,
            Err(c) => {
                return send(event_line("ERROR", &ApiError::too_old(0, c.0).to_status())).await;
            }
        };
        for (key, obj) in &snap.items {
            if matches(obj) && target.name.as_deref().is_none_or(|n| key.1 == n) {
                send(event_line("ADDED", &cluster::present(obj, t, &target.version, false))).await?;
            }
        }
        if send_initial == Some(true) && bookmarks {
            send(bookmark(snap.rv, true)).await?;
        }
        snap.rv
    } else {
        match rv_param.as_deref().map(str::parse::<u64>) {
            Some(Ok(rv)) => rv,
            _ => {
                let e = ApiError::bad_request(format!("invalid resource version {:?}", rv_param.unwrap_or_default()));
                return send(event_line("ERROR", &e.to_status())).await;
            }
        }
    };
    let deadline = timeout.map(|d| tokio::time::Instant::now() + d);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        let (changes, complete_to) = match shared.cluster.store().changes_since(&gr, position) {
            Ok(c) => c,
            Err(c) => return send(event_line("ERROR", &ApiError::too_old(position, c.0).to_status())).await,
        };
        for change in changes {
            if ns.as_deref().is_some_and(|n| change.key.0 != n)
                || target.name.as_deref().is_some_and(|n| change.key.1 != n)
            {
                continue;
            }
            let now = matches(&change.object);
            let before = change.previous.as_deref().is_some_and(matches);
            let kind = match (change.change, before, now) {
                (ChangeType::Deleted, true, _) => "DELETED",
                (ChangeType::Deleted, false, _) => continue,
                (_, true, true) => "MODIFIED",
                (_, false, true) => "ADDED",
                (_, true, false) => "DELETED",
                (_, false, false) => continue,
            };
            send(event_line(kind, &cluster::present(&change.object, t, &target.version, false))).await?;
        }
        // Everything up to here was seen, even if none of it concerned this watch.
        position = complete_to;
        let sleep_until = deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86_400));
        tokio::select! {
            changed = store_rx.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            _ = ticker.tick() => {
                if bookmarks {
                    send(bookmark(position, false)).await?;
                }
            }
            () = tokio::time::sleep_until(sleep_until) => return Ok(()),
            () = tx.closed() => return Ok(()),
        }
    }
}

fn control(shared: &Arc<Shared>, req: &Incoming_, what: &str) -> Response<Body> {
    match (req.method.clone(), what) {
        (Method::GET, "requests") => json_response(200, &serde_json::to_value(shared.log.all()).unwrap_or_default()),
        (Method::DELETE, "requests") => {
            shared.log.clear();
            json_response(200, &json!({}))
        }
        (Method::GET, "faults") => {
            let list: Vec<Value> = shared
                .faults
                .list()
                .into_iter()
                .map(|(id, f)| json!({ "id": id.0, "fault": f, "fired": shared.faults.fired(id) }))
                .collect();
            json_response(200, &Value::Array(list))
        }
        (Method::POST, "faults") => match serde_json::from_slice::<Fault>(&req.body) {
            Ok(f) => json_response(201, &json!({ "id": shared.faults.add(f).0 })),
            Err(e) => error_response(&ApiError::bad_request(format!("not a fault: {e}"))),
        },
        (Method::DELETE, "faults") => {
            shared.faults.clear();
            json_response(200, &json!({}))
        }
        (Method::DELETE, w) if w.starts_with("faults/") => match w["faults/".len()..].parse::<u64>() {
            Ok(id) if shared.faults.remove(FaultId(id)) => json_response(200, &json!({})),
            _ => error_response(&ApiError::path_not_found()),
        },
        (Method::POST, "compact") => {
            let rv = shared.cluster.store().resource_version();
            shared.cluster.store().compact(rv);
            json_response(200, &json!({ "compactedTo": rv }))
        }
        _ => error_response(&ApiError::path_not_found()),
    }
}

/// Serves connections from `listener` until `shutdown` fires.
pub async fn run(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| serve(shared.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    connections.abort_all();
}

/// Compacts the store every `interval`, to the resourceVersion it had one interval earlier
/// (as kube-apiserver compacts etcd every 5 minutes).
pub async fn compactor(shared: Arc<Shared>, interval: Duration) {
    let mut previous = shared.cluster.store().resource_version();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        ticker.tick().await;
        shared.cluster.store().compact(previous);
        previous = shared.cluster.store().resource_version();
    }
}

pub mod table {
    //! Minimal `Table` replies (`application/json;as=Table;v=v1;g=meta.k8s.io`).
    //!
    //! The `Table` form kube-apiserver serves to `kubectl get`: here only the `Name` and `Age`
    //! columns that custom resources without printer columns get, with each row's object as
    //! `PartialObjectMetadata`. Built-in types get the same two columns (the real server has
    //! type-specific ones: a pod's READY, STATUS, RESTARTS...).

    use serde_json::{json, Value};

    use crate::util;

    /// A list or one object → a `Table`.
    pub fn to_table(v: &Value, is_list: bool) -> Value {
        let items: Vec<Value> = if is_list {
            v.get("items").and_then(Value::as_array).cloned().unwrap_or_default()
        } else {
            vec![v.clone()]
        };
        let now = util::now_secs();
        let rows: Vec<Value> = items
            .iter()
            .map(|o| {
                let meta = o.get("metadata").cloned().unwrap_or_else(|| json!({}));
                let age = meta
                    .get("creationTimestamp")
                    .and_then(Value::as_str)
                    .and_then(util::parse_rfc3339)
                    .map_or_else(|| "<unknown>".to_string(), |t| util::human_age(now - t));
                json!({
                    "cells": [meta.get("name").cloned().unwrap_or(Value::Null), age],
                    "object": { "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta },
                })
            })
            .collect();
        let mut metadata = json!({});
        if is_list {
            if let Some(m) = v.get("metadata") {
                metadata = m.clone();
            }
        } else if let Some(rv) = v.pointer("/metadata/resourceVersion") {
            metadata = json!({ "resourceVersion": rv });
        }
        json!({
            "kind": "Table",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "columnDefinitions": [
                { "name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0 },
                { "name": "Age", "type": "date", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0 },
            ],
            "rows": rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let r = |g: &str, v: &str, ns: Option<&str>, res: &str, name: Option<&str>, sub: Option<&str>, watch: bool| {
            Route::Resource {
                group: g.into(),
                version: v.into(),
                namespace: ns.map(Into::into),
                resource: res.into(),
                name: name.map(Into::into),
                subresource: sub.map(Into::into),
                watch,
            }
        };
        let cases: Vec<(&str, Route)> = vec![
            ("/version", Route::Version),
            ("/api", Route::CoreVersions),
            ("/apis", Route::Groups),
            ("/apis/apps", Route::Group("apps".into())),
            ("/api/v1", Route::ResourceList(String::new(), "v1".into())),
            ("/apis/apps/v1", Route::ResourceList("apps".into(), "v1".into())),
            ("/api/v1/pods", r("", "v1", None, "pods", None, None, false)),
            ("/api/v1/namespaces", r("", "v1", None, "namespaces", None, None, false)),
            ("/api/v1/namespaces/default", r("", "v1", None, "namespaces", Some("default"), None, false)),
            (
                "/api/v1/namespaces/default/status",
                r("", "v1", None, "namespaces", Some("default"), Some("status"), false),
            ),
            ("/api/v1/namespaces/default/pods", r("", "v1", Some("default"), "pods", None, None, false)),
            (
                "/api/v1/namespaces/default/pods/p/status",
                r("", "v1", Some("default"), "pods", Some("p"), Some("status"), false),
            ),
            (
                "/api/v1/namespaces/%28%24x%29/configmaps/a",
                r("", "v1", Some("($x)"), "configmaps", Some("a"), None, false),
            ),
            (
                "/apis/apps/v1/namespaces/ns/deployments/web/scale",
                r("apps", "v1", Some("ns"), "deployments", Some("web"), Some("scale"), false),
            ),
            (
                "/apis/apps/v1/watch/namespaces/ns/deployments",
                r("apps", "v1", Some("ns"), "deployments", None, None, true),
            ),
            ("/apis/example.io/v1/widgets/w", r("example.io", "v1", None, "widgets", Some("w"), None, false)),
            ("/api/v1/a/b/c/d", Route::NotFound),
            ("/nothing", Route::NotFound),
            ("/testserver/faults", Route::Control("faults".into())),
        ];
        for (path, want) in cases {
            assert_eq!(route(path), want, "{path}");
        }
    }

    #[test]
    fn accept_headers() {
        assert!(wants_aggregated("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json, */*"));
        assert!(wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
        assert!(!wants_table("application/json"));
    }
}

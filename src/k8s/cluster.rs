//! A live cluster as a source of objects: connecting (kubeconfig or in-cluster), discovery, and
//! listing every type concurrently, page by page, with retries.
//!
//! The Kubernetes client (kube-rs) runs on a Tokio runtime that this module owns, so callers
//! stay synchronous: [`Cluster::list`] returns a channel the caller drains on its own thread
//! while the pages of several types download and parse on the runtime's threads. Pages are
//! handed over as they arrive and the channel is bounded, so at most a few pages of object
//! bodies are in memory at any time.
//!
//! # Failure handling
//! - 429 and 5xx answers, transport errors and unreadable bodies are retried with exponential
//!   backoff (with jitter), honouring `Retry-After`, within [`RetryPolicy`]'s bounds.
//! - 410 Gone on a continued list (the continue token expired: the server compacted past the
//!   list's snapshot) restarts that type's list from the beginning; the caller is told to drop
//!   what it already took of that list ([`ListEvent::Restart`]).
//! - 403 on a list skips the type ([`TypeOutcome::Forbidden`]); 404 (a type that went away
//!   since discovery) skips it too ([`TypeOutcome::Gone`]).
//! - A list that still fails after its retries ends as [`TypeOutcome::Failed`], with whether
//!   some of its objects were already handed over.
//! - A server that cannot be reached any more, or that stops accepting the credentials, is
//!   [`ListEvent::Fatal`]: the caller must not commit anything.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;

use super::discovery::{self, ApiType, Discovery, LegacyAnswer};

/// Why talking to the cluster failed. Messages name the context and the server, never object
/// contents.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot load the Kubernetes configuration: {0}")]
    Config(String),
    #[error("cannot reach the cluster of context {context:?} at {server}: {detail}")]
    Unreachable { context: String, server: String, detail: String },
    #[error("the cluster of context {context:?} at {server} refused the credentials (401 Unauthorized): {detail}; check the kubeconfig's user or token")]
    Unauthorized { context: String, server: String, detail: String },
    #[error("{what}: the server answered {code} {reason}: {message}")]
    Api { what: String, code: u16, reason: String, message: String },
    #[error("{what}: the server sent an unreadable answer: {detail}")]
    Garbage { what: String, detail: String },
}

/// Where to find the cluster.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// A kubeconfig file (default: `KUBECONFIG`, then `~/.kube/config`, then the in-cluster
    /// service account).
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig (default: its current context).
    pub context: Option<String>,
}

/// `/api/v1` or `/apis/GROUP/VERSION`: a group version's discovery document, and the prefix of
/// its objects' paths.
pub fn group_version_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

/// Which kinds the cluster serves at versions other than the preferred ones discovery gives:
/// each group version's discovery document is asked for once.
#[derive(Debug, Default)]
pub struct ServedVersions {
    docs: std::collections::HashMap<(String, String), Option<Value>>,
}

impl ServedVersions {
    /// The resource (plural) serving `kind` at `group/version`; `None` when the cluster does
    /// not serve that version (404) or the version lacks the kind.
    pub fn resource(
        &mut self,
        cluster: &Cluster,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<Option<String>, KubeError> {
        let key = (group.to_string(), version.to_string());
        if !self.docs.contains_key(&key) {
            let doc = match cluster.get_json(&group_version_path(group, version)) {
                Ok(d) => Some(d),
                Err(KubeError::Api { code: 404, .. }) => None,
                Err(e) => return Err(e),
            };
            self.docs.insert(key.clone(), doc);
        }
        Ok(self.docs[&key]
            .as_ref()
            .and_then(|d| d.get("resources"))
            .and_then(Value::as_array)
            .and_then(|rs| {
                rs.iter().find(|r| {
                    r.get("kind").and_then(Value::as_str) == Some(kind)
                        && r.get("name").and_then(Value::as_str).is_some_and(|n| !n.contains('/'))
                })
            })
            .and_then(|r| r.get("name").and_then(Value::as_str).map(str::to_string)))
    }
}

/// How [`Cluster::apply`] applies.
#[derive(Clone, Debug)]
pub struct ApplyParams {
    /// The field manager (kubesnap's own, so that its fields never mix with a controller's).
    pub manager: String,
    /// Take fields that another manager owns (`force=true`).
    pub force: bool,
    /// The server's dry run: admission and validation, nothing stored.
    pub dry_run: bool,
}

/// How requests are retried.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    /// The first backoff; it doubles with each retry.
    pub base: Duration,
    /// The longest single wait (a longer `Retry-After` is cut to this).
    pub max_wait: Duration,
    /// Restarts of one type's list after expired continue tokens.
    pub restarts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 6, base: Duration::from_millis(200), max_wait: Duration::from_secs(30), restarts: 3 }
    }
}

/// A connected cluster.
pub struct Cluster {
    rt: tokio::runtime::Runtime,
    client: kube::Client,
    /// The kubeconfig context (`in-cluster` in a pod without a kubeconfig).
    pub context: String,
    /// The API server's URL.
    pub server: String,
    /// The namespace of the context (or of the pod's service account).
    pub default_namespace: String,
    pub retry: RetryPolicy,
    retries: Arc<AtomicU64>,
}

/// How one request failed, before deciding whether to retry.
#[derive(Debug)]
enum Failure {
    Status { code: u16, reason: String, message: String, retry_after: Option<Duration> },
    Transport(String),
    Body(String),
}

impl Failure {
    fn retryable(&self) -> bool {
        match self {
            Failure::Status { code, .. } => matches!(code, 429 | 500 | 502 | 503 | 504),
            Failure::Transport(_) | Failure::Body(_) => true,
        }
    }
}

/// One error line of a kube-rs error, with its sources (kube's own messages are terse).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The `Status` of an error answer, or the body's first line.
fn status_of(code: u16, body: &[u8], retry_after: Option<Duration>) -> Failure {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let field = |k: &str| v.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str).map(str::to_string);
    let reason = field("reason")
        .or_else(|| {
            http::StatusCode::from_u16(code).ok().and_then(|c| c.canonical_reason()).map(|r| r.replace(' ', ""))
        })
        .unwrap_or_default();
    let message = field("message").unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        text.lines().next().unwrap_or_default().chars().take(200).collect()
    });
    Failure::Status { code, reason, message, retry_after }
}

/// A small random fraction of `d`, so that many clients do not retry in step.
fn jitter(d: Duration) -> Duration {
    let n: u64 = rand::random::<u64>() % 1000;
    d + d.mul_f64(n as f64 / 4000.0)
}

/// What happened to one type's list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeOutcome {
    /// Every object was handed over.
    Complete,
    /// 403: the credentials may not list it.
    Forbidden(String),
    /// 404: the type is not served any more (deleted since discovery).
    Gone(String),
    /// The list could not be completed; `partial` when some objects were handed over.
    Failed { message: String, partial: bool },
}

/// One list to run: a type, in one namespace or across all.
#[derive(Clone, Debug)]
pub struct ListJob {
    pub api: ApiType,
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
}

impl ListJob {
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) if self.api.resource.namespaced => format!("{} in namespace {ns}", self.api.display_name()),
            _ => self.api.display_name(),
        }
    }
}

/// What a running [`Cluster::list`] reports, in order per job.
#[derive(Debug)]
pub enum ListEvent {
    /// Objects of job `job`, each with `apiVersion` and `kind` set.
    Page { job: usize, items: Vec<Value> },
    /// The list of `job` restarts: drop the objects already handed over for it.
    Restart { job: usize, reason: String },
    /// A request of `job` is retried after a failure (for progress and warnings).
    Retrying { job: usize, message: String },
    /// `job` is finished.
    Done { job: usize, outcome: TypeOutcome },
    /// The cluster cannot be used any more; nothing that was listed may be committed.
    Fatal(KubeError),
}

/// How lists run.
#[derive(Clone, Debug)]
pub struct ListOptions {
    /// Objects per page (`limit`).
    pub page_size: u32,
    /// Lists in flight at once.
    pub concurrency: usize,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions { page_size: 500, concurrency: 8 }
    }
}

#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    metadata: PageMeta,
    items: Vec<Value>,
}

#[derive(serde::Deserialize, Default)]
struct PageMeta {
    #[serde(default, rename = "continue")]
    continue_token: Option<String>,
}

/// Percent-encodes a query parameter value.
/// Percent-encodes everything but unreserved characters: for query values and path segments.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A group version (group, version) and what its legacy discovery document said.
type LegacyItem = ((String, String), LegacyAnswer);

const AGGREGATED_ACCEPT: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";

impl Cluster {
    /// Loads the configuration and builds a client (no request is made yet).
    pub fn connect(opts: &ConnectOptions) -> Result<Cluster, KubeError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kubesnap-kube")
            .enable_all()
            .build()
            .map_err(|e| KubeError::Config(format!("cannot start the I/O runtime: {e}")))?;
        let (mut config, context) = rt.block_on(load_config(opts))?;
        // Retries are ours (counted, reported, honouring Retry-After, bounded by RetryPolicy).
        config.default_retry = false;
        let server = config.cluster_url.to_string().trim_end_matches('/').to_string();
        let default_namespace = config.default_namespace.clone();
        let client = {
            let _guard = rt.enter();
            kube::Client::try_from(config).map_err(|e| KubeError::Config(chain(&e)))?
        };
        Ok(Cluster {
            rt,
            client,
            context,
            server,
            default_namespace,
            retry: RetryPolicy::default(),
            retries: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Requests retried so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    fn requester(&self) -> Requester {
        Requester {
            client: self.client.clone(),
            context: self.context.clone(),
            server: self.server.clone(),
            retry: self.retry.clone(),
            retries: self.retries.clone(),
        }
    }

    /// GET a JSON document, with retries.
    pub fn get_json(&self, path: &str) -> Result<Value, KubeError> {
        let r = self.requester();
        self.rt.block_on(async move {
            let bytes = r.get(path, "application/json", &mut |_| {}).await.map_err(|f| r.error(path, f))?;
            serde_json::from_slice(&bytes)
                .map_err(|e| KubeError::Garbage { what: format!("GET {path}"), detail: e.to_string() })
        })
    }

    /// GET a JSON document; `None` on 403 or 404.
    pub fn get_json_opt(&self, path: &str) -> Result<Option<Value>, KubeError> {
        match self.get_json(path) {
            Ok(v) => Ok(Some(v)),
            Err(KubeError::Api { code: 403 | 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET one object; `None` on 404 (403 and every other failure are errors).
    pub fn get_object(&self, path: &str) -> Result<Option<Value>, KubeError> {
        match self.get_json(path) {
            Ok(v) => Ok(Some(v)),
            Err(KubeError::Api { code: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Server-side apply of `body` to the object at `path` (its own URL, not the collection's)
    /// as field manager `manager`; the object as the server has it afterwards. With
    /// `dry_run`, the server runs every admission step and stores nothing. Unknown fields are
    /// refused (`fieldValidation=Strict`) rather than silently dropped.
    pub fn apply(&self, path: &str, body: &Value, opts: &ApplyParams) -> Result<Value, KubeError> {
        let mut q = format!("{path}?fieldManager={}&fieldValidation=Strict", query_escape(&opts.manager));
        if opts.force {
            q.push_str("&force=true");
        }
        if opts.dry_run {
            q.push_str("&dryRun=All");
        }
        let bytes = serde_json::to_vec(body).map_err(|e| KubeError::Config(e.to_string()))?;
        let r = self.requester();
        self.rt.block_on(async move {
            let call = Call {
                method: http::Method::PATCH,
                path: &q,
                accept: "application/json",
                content_type: Some("application/apply-patch+yaml"),
                body: Some(&bytes),
            };
            r.call_as(&call, &mut |_| {}, |b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
                .await
                .map_err(|f| r.error_of(&call, f))
        })
    }

    /// Every served type: aggregated discovery where the server offers it, legacy otherwise.
    pub fn discover(&self) -> Result<Discovery, KubeError> {
        let r = self.requester();
        self.rt.block_on(async move {
            let get = |path: &'static str, accept: &'static str| {
                let r = r.clone();
                async move {
                    let b = r.get(path, accept, &mut |_| {}).await.map_err(|f| r.error(path, f))?;
                    serde_json::from_slice::<Value>(&b)
                        .map_err(|e| KubeError::Garbage { what: format!("GET {path}"), detail: e.to_string() })
                }
            };
            let (api, apis) = futures::try_join!(get("/api", AGGREGATED_ACCEPT), get("/apis", AGGREGATED_ACCEPT))?;
            if discovery::is_aggregated(&api) && discovery::is_aggregated(&apis) {
                return discovery::from_aggregated(&[&api, &apis])
                    .map_err(|detail| KubeError::Garbage { what: "discovery".into(), detail });
            }
            // Legacy: one request per group version, a few at a time.
            let (api, apis) = if discovery::is_aggregated(&api) || discovery::is_aggregated(&apis) {
                futures::try_join!(get("/api", "application/json"), get("/apis", "application/json"))?
            } else {
                (api, apis)
            };
            let gvs = discovery::legacy_group_versions(&api, &apis);
            let answers: Vec<Result<LegacyItem, KubeError>> = futures::stream::iter(gvs.into_iter().map(|(g, v)| {
                let r = r.clone();
                async move {
                    let path = if g.is_empty() { format!("/api/{v}") } else { format!("/apis/{g}/{v}") };
                    let answer = match r.get(&path, "application/json", &mut |_| {}).await {
                        Ok(b) => match serde_json::from_slice::<Value>(&b) {
                            Ok(v) => LegacyAnswer::Resources(v),
                            Err(e) => LegacyAnswer::Failed(format!("unreadable discovery document: {e}")),
                        },
                        Err(Failure::Status { code, reason, message, .. }) => {
                            LegacyAnswer::Failed(format!("{code} {reason}: {message}"))
                        }
                        Err(f) => return Err(r.error(&path, f)),
                    };
                    Ok(((g, v), answer))
                }
            }))
            .buffered(8)
            .collect()
            .await;
            Ok(discovery::from_legacy(answers.into_iter().collect::<Result<_, _>>()?))
        })
    }

    /// Runs the lists, `opts.concurrency` at a time, and returns their events as they happen.
    /// The last event is a [`ListEvent::Fatal`], or the last job's `Done`. Dropping the receiver
    /// stops the lists.
    pub fn list(&self, jobs: Vec<ListJob>, opts: &ListOptions) -> tokio::sync::mpsc::Receiver<ListEvent> {
        // Enough room that the downloads keep going while the caller stores a page, little
        // enough that pages in memory stay few: at most `concurrency` pages wait here and
        // `concurrency` more are being parsed (a page of 500 objects is a few MiB as values).
        let (tx, rx) = tokio::sync::mpsc::channel(opts.concurrency.max(1));
        let r = self.requester();
        let opts = opts.clone();
        self.rt.spawn(async move {
            let fatal = Arc::new(std::sync::atomic::AtomicBool::new(false));
            futures::stream::iter(jobs.into_iter().enumerate())
                .map(|(i, job)| {
                    let (r, tx, fatal) = (r.clone(), tx.clone(), fatal.clone());
                    let opts = opts.clone();
                    async move {
                        if fatal.load(Ordering::Relaxed) {
                            return;
                        }
                        match r.list_one(i, &job, &opts, &tx).await {
                            Ok(outcome) => {
                                let _ = tx.send(ListEvent::Done { job: i, outcome }).await;
                            }
                            Err(e) => {
                                if !fatal.swap(true, Ordering::Relaxed) {
                                    let _ = tx.send(ListEvent::Fatal(e)).await;
                                }
                            }
                        }
                    }
                })
                .buffer_unordered(opts.concurrency.max(1))
                .collect::<Vec<()>>()
                .await;
        });
        rx
    }
}

/// The client configuration: `--kubeconfig`, else `KUBECONFIG` / `~/.kube/config`, else the pod's service
/// account; and the context's name (`in-cluster` in a pod).
pub async fn load_config(opts: &ConnectOptions) -> Result<(kube::Config, String), KubeError> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let kopts = KubeConfigOptions { context: opts.context.clone(), cluster: None, user: None };
    let from_file = |kc: Kubeconfig| {
        let context = opts.context.clone().or_else(|| kc.current_context.clone()).unwrap_or_default();
        (kc, context)
    };
    if let Some(path) = &opts.kubeconfig {
        let kc = Kubeconfig::read_from(path)
            .map_err(|e| KubeError::Config(format!("cannot read kubeconfig {}: {}", path.display(), chain(&e))))?;
        let (kc, context) = from_file(kc);
        let config = kube::Config::from_custom_kubeconfig(kc, &kopts)
            .await
            .map_err(|e| KubeError::Config(format!("kubeconfig {}: {}", path.display(), chain(&e))))?;
        return Ok((config, context));
    }
    match Kubeconfig::read() {
        Ok(kc) => {
            let (kc, context) = from_file(kc);
            let config = kube::Config::from_custom_kubeconfig(kc, &kopts)
                .await
                .map_err(|e| KubeError::Config(format!("kubeconfig: {}", chain(&e))))?;
            Ok((config, context))
        }
        Err(file_err) => {
            if opts.context.is_some() {
                return Err(KubeError::Config(format!("--context needs a kubeconfig: {}", chain(&file_err))));
            }
            match kube::Config::incluster() {
                Ok(c) => Ok((c, "in-cluster".into())),
                Err(e) => Err(KubeError::Config(format!(
                    "no kubeconfig ({}) and not running in a pod ({}); give --kubeconfig or set KUBECONFIG",
                    chain(&file_err),
                    chain(&e)
                ))),
            }
        }
    }
}

/// What a request needs, cheap to clone into tasks.
#[derive(Clone)]
struct Requester {
    client: kube::Client,
    context: String,
    server: String,
    retry: RetryPolicy,
    retries: Arc<AtomicU64>,
}

/// One HTTP request to the API server.
struct Call<'a> {
    method: http::Method,
    path: &'a str,
    accept: &'a str,
    content_type: Option<&'a str>,
    body: Option<&'a [u8]>,
}

impl<'a> Call<'a> {
    fn get(path: &'a str, accept: &'a str) -> Call<'a> {
        Call { method: http::Method::GET, path, accept, content_type: None, body: None }
    }
}

impl Requester {
    async fn send_once(&self, call: &Call<'_>) -> Result<Bytes, Failure> {
        let mut req = http::Request::builder().method(call.method.clone()).uri(call.path);
        req = req.header(http::header::ACCEPT, call.accept);
        if let Some(ct) = call.content_type {
            req = req.header(http::header::CONTENT_TYPE, ct);
        }
        let body = match call.body {
            Some(b) => kube::client::Body::from(b.to_vec()),
            None => kube::client::Body::empty(),
        };
        let req = req.body(body).map_err(|e| Failure::Transport(e.to_string()))?;
        let resp = self.client.send(req).await.map_err(|e| Failure::Transport(chain(&e)))?;
        let code = resp.status().as_u16();
        let after = retry_after(resp.headers());
        let body = resp.into_body().collect_bytes().await.map_err(|e| Failure::Body(chain(&e)))?;
        if (200..300).contains(&code) {
            Ok(body)
        } else {
            Err(status_of(code, &body, after))
        }
    }

    /// GET with retries; `on_retry` hears of each retry.
    async fn get(&self, path: &str, accept: &str, on_retry: &mut (dyn FnMut(String) + Send)) -> Result<Bytes, Failure> {
        self.get_as(path, accept, on_retry, Ok).await
    }

    /// GET and parse with retries: an answer that does not parse is retried like one that
    /// could not be read (a proxy may have cut it short).
    async fn get_as<T>(
        &self,
        path: &str,
        accept: &str,
        on_retry: &mut (dyn FnMut(String) + Send),
        parse: impl Fn(Bytes) -> Result<T, String>,
    ) -> Result<T, Failure> {
        self.call_as(&Call::get(path, accept), on_retry, parse).await
    }

    /// A request with retries: transient failures (429, 5xx, cut connections, answers that do
    /// not parse) are retried with backoff. Only idempotent requests come here (GET, and
    /// server-side apply, which gives the same object however often it is sent).
    async fn call_as<T>(
        &self,
        call: &Call<'_>,
        on_retry: &mut (dyn FnMut(String) + Send),
        parse: impl Fn(Bytes) -> Result<T, String>,
    ) -> Result<T, Failure> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let got = match self.send_once(call).await {
                Ok(b) => parse(b).map_err(Failure::Body),
                Err(f) => Err(f),
            };
            match got {
                Ok(t) => return Ok(t),
                Err(f) if f.retryable() && attempt < self.retry.attempts => {
                    let backoff = self.retry.base.saturating_mul(1 << (attempt - 1).min(16));
                    let wait = match &f {
                        Failure::Status { retry_after: Some(d), .. } => (*d).max(backoff),
                        _ => jitter(backoff),
                    }
                    .min(self.retry.max_wait);
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    on_retry(format!("{}; retrying in {:.1}s", self.error_of(call, f), wait.as_secs_f64()));
                    tokio::time::sleep(wait).await;
                }
                Err(f) => return Err(f),
            }
        }
    }

    fn error_of(&self, call: &Call<'_>, f: Failure) -> KubeError {
        let mut e = self.error(call.path, f);
        if let KubeError::Api { what, .. } | KubeError::Garbage { what, .. } = &mut e {
            *what = format!("{} {}", call.method, call.path);
        }
        e
    }

    fn error(&self, path: &str, f: Failure) -> KubeError {
        let what = format!("GET {path}");
        match f {
            Failure::Status { code: 401, message, .. } => {
                KubeError::Unauthorized { context: self.context.clone(), server: self.server.clone(), detail: message }
            }
            Failure::Status { code, reason, message, .. } => KubeError::Api { what, code, reason, message },
            Failure::Transport(detail) => {
                KubeError::Unreachable { context: self.context.clone(), server: self.server.clone(), detail }
            }
            Failure::Body(detail) => KubeError::Garbage { what, detail },
        }
    }

    /// Lists one job to its end. `Err` only for what must stop the whole snapshot.
    async fn list_one(
        &self,
        i: usize,
        job: &ListJob,
        opts: &ListOptions,
        tx: &tokio::sync::mpsc::Sender<ListEvent>,
    ) -> Result<TypeOutcome, KubeError> {
        let base = job.api.collection_path(job.namespace.as_deref());
        let api_version = job.api.api_version();
        let mut restarts = 0u32;
        let mut continue_token: Option<String> = None;
        let mut handed_over = false;
        loop {
            let mut q = format!("{base}?limit={}", opts.page_size);
            if let Some(s) = &job.label_selector {
                q.push_str(&format!("&labelSelector={}", query_escape(s)));
            }
            if let Some(s) = &job.field_selector {
                q.push_str(&format!("&fieldSelector={}", query_escape(s)));
            }
            if let Some(c) = &continue_token {
                q.push_str(&format!("&continue={}", query_escape(c)));
            }
            let mut retry_notes = Vec::new();
            let fetched = self
                .get_as(&q, "application/json", &mut |m| retry_notes.push(m), |b| {
                    serde_json::from_slice::<Page>(&b).map_err(|e| format!("an unreadable list: {e}"))
                })
                .await;
            for message in retry_notes {
                if tx.send(ListEvent::Retrying { job: i, message }).await.is_err() {
                    return Ok(TypeOutcome::Failed { message: "stopped".into(), partial: handed_over });
                }
            }
            let page = match fetched {
                Ok(p) => p,
                Err(Failure::Status { code: 410, message, .. }) if continue_token.is_some() => {
                    restarts += 1;
                    if restarts > self.retry.restarts {
                        return Ok(TypeOutcome::Failed {
                            message: format!("the list expired {restarts} times (410 Gone): {message}"),
                            partial: handed_over,
                        });
                    }
                    continue_token = None;
                    if handed_over {
                        let reason = format!("the continue token expired (410 Gone): {message}");
                        if tx.send(ListEvent::Restart { job: i, reason }).await.is_err() {
                            return Ok(TypeOutcome::Failed { message: "stopped".into(), partial: true });
                        }
                        handed_over = false;
                    }
                    continue;
                }
                Err(Failure::Status { code: 403, message, .. }) => return Ok(TypeOutcome::Forbidden(message)),
                Err(Failure::Status { code: 404, message, .. }) => return Ok(TypeOutcome::Gone(message)),
                Err(f @ (Failure::Transport(_) | Failure::Status { code: 401, .. })) => return Err(self.error(&q, f)),
                Err(Failure::Status { code, reason, message, .. }) => {
                    return Ok(TypeOutcome::Failed {
                        message: format!("{code} {reason}: {message}"),
                        partial: handed_over,
                    })
                }
                Err(Failure::Body(detail)) => {
                    return Ok(TypeOutcome::Failed {
                        message: format!("the answer could not be read: {detail}"),
                        partial: handed_over,
                    })
                }
            };
            let mut items = page.items;
            for item in &mut items {
                if let Some(o) = item.as_object_mut() {
                    if o.get("apiVersion").and_then(Value::as_str).is_none_or(str::is_empty) {
                        o.insert("apiVersion".into(), Value::String(api_version.clone()));
                    }
                    if o.get("kind").and_then(Value::as_str).is_none_or(str::is_empty) {
                        o.insert("kind".into(), Value::String(job.api.resource.kind.clone()));
                    }
                }
            }
            if !items.is_empty() {
                handed_over = true;
                if tx.send(ListEvent::Page { job: i, items }).await.is_err() {
                    return Ok(TypeOutcome::Failed { message: "stopped".into(), partial: true });
                }
            }
            match page.metadata.continue_token.filter(|c| !c.is_empty()) {
                Some(c) => continue_token = Some(c),
                None => return Ok(TypeOutcome::Complete),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("app in (a,b),tier!=x"), "app%20in%20%28a%2Cb%29%2Ctier%21%3Dx");
        assert_eq!(query_escape("plain-1.2_~"), "plain-1.2_~");
    }

    #[test]
    fn error_answers_are_read_as_status() {
        let body =
            br#"{"kind":"Status","status":"Failure","message":"secrets is forbidden","reason":"Forbidden","code":403}"#;
        match status_of(403, body, None) {
            Failure::Status { code, reason, message, .. } => {
                assert_eq!((code, reason.as_str(), message.as_str()), (403, "Forbidden", "secrets is forbidden"));
            }
            f => panic!("{f:?}"),
        }
        match status_of(502, b"<html>bad gateway</html>\nmore", Some(Duration::from_secs(3))) {
            Failure::Status { code, reason, message, retry_after } => {
                assert_eq!((code, reason.as_str(), message.as_str()), (502, "BadGateway", "<html>bad gateway</html>"));
                assert_eq!(retry_after, Some(Duration::from_secs(3)));
            }
            f => panic!("{f:?}"),
        }
    }

    #[test]
    fn what_is_retried() {
        let s = |code| Failure::Status { code, reason: String::new(), message: String::new(), retry_after: None };
        for (f, want) in [
            (s(429), true),
            (s(500), true),
            (s(503), true),
            (s(504), true),
            (s(403), false),
            (s(404), false),
            (s(410), false),
            (s(401), false),
            (Failure::Transport("reset".into()), true),
            (Failure::Body("eof".into()), true),
        ] {
            assert_eq!(f.retryable(), want, "{f:?}");
        }
    }
}

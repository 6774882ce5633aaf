//! A faithful, in-memory Kubernetes API server for kubesnap's tests, over plain HTTP on
//! 127.0.0.1, checked against the real `kubectl`.
//!
//! ```no_run
//! use kubesnap_testserver::{Fault, FaultAction, Options, TestServer};
//!
//! let server = TestServer::start(Options::default()).expect("server");
//! server.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig")).expect("kubeconfig");
//! server.faults().add(Fault::new(FaultAction::TooManyRequests { retry_after_seconds: 1 }).on("apps", "deployments").times(1));
//! // ... run the code under test against server.url() ...
//! assert!(server.requests().iter().any(|r| r.status == 429));
//! server.stop();
//! ```
//!
//! Modules, each documenting what it emulates and where it differs from kube-apiserver:
//! - [`types`]: the served types (Kubernetes 1.33's built-ins, CRDs, implied fixture types)
//!   and discovery documents;
//! - [`store`]: the multi-version object store (resourceVersions, snapshots, compaction, the
//!   change log watches read);
//! - [`cluster`]: the verbs and their semantics (create, get, list, update, patch, apply,
//!   delete, dry runs, CRDs, finalizers, status and scale subresources);
//! - [`fields`]: managed fields and the server-side apply subset;
//! - [`patch`]: merge, JSON and strategic merge patches;
//! - [`selector`]: label and field selectors;
//! - [`server`]: HTTP routing, discovery negotiation, watches, faults, the request log;
//! - [`faults`]: fault rules and the request log types;
//! - [`openapi`]: skeleton OpenAPI v3 documents (server-side field validation for kubectl);
//! - [`fixtures`], [`yaml`]: loading dump folders, YAML as Kubernetes reads it.
//!
//! Every server runs on its own thread with its own Tokio runtime, so it can be started and
//! used from synchronous tests and from any async runtime alike.
#![forbid(unsafe_code)]

pub mod cluster;
pub mod faults;
pub mod fields;
pub mod fixtures;
pub mod openapi;
pub mod patch;
pub mod selector;
pub mod server;
pub mod status;
pub mod store;
pub mod types;
pub mod util;
pub mod yaml;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use cluster::Cluster;
pub use faults::{Fault, FaultAction, FaultId, Faults, RequestRecord};
pub use fixtures::LoadReport;
pub use status::ApiError;
pub use store::GroupResource;

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Options {
    /// A folder (or file) of manifests to load before serving.
    pub fixtures: Option<PathBuf>,
    /// The port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Create `default`, `kube-system` and `kube-public` (fixtures may replace them).
    pub default_namespaces: bool,
    /// Serve aggregated (v2) discovery; without it clients must use legacy discovery.
    pub aggregated_discovery: bool,
    /// Interval between watch bookmarks.
    pub bookmark_interval: Duration,
    /// Compact the store every interval, to the resourceVersion of the interval before (as
    /// kube-apiserver does every 5 minutes); never when `None`.
    pub compaction_interval: Option<Duration>,
    /// The version `/version` reports (the installed kubectl picks its bundled kubectl by it).
    pub kubernetes_version: String,
    /// Serve minimal `Table` replies to `kubectl get` (NAME and AGE columns).
    pub serve_tables: bool,
    /// Serve the skeleton OpenAPI v3 documents that let kubectl validate on the server (so
    /// that `kubectl create`/`apply`/`edit` work without `--validate=false`).
    pub serve_openapi: bool,
    /// Faults active from the start.
    pub faults: Vec<Fault>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fixtures: None,
            port: 0,
            default_namespaces: true,
            aggregated_discovery: true,
            bookmark_interval: Duration::from_secs(5),
            compaction_interval: Some(Duration::from_secs(300)),
            kubernetes_version: "v1.33.1".into(),
            serve_tables: false,
            serve_openapi: true,
            faults: Vec::new(),
        }
    }
}

/// Why a server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The fixtures folder could not be read.
    #[error("cannot read fixtures {path}: {source}")]
    Fixtures {
        /// The folder.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The socket could not be bound.
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        /// The port asked for.
        port: u16,
        /// The error.
        source: std::io::Error,
    },
    /// The server thread or its runtime could not start.
    #[error("cannot start the server thread: {0}")]
    Thread(std::io::Error),
}

/// A running server. Dropping it stops it.
pub struct TestServer {
    shared: Arc<server::Shared>,
    addr: SocketAddr,
    report: LoadReport,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

type Ready = Result<SocketAddr, StartError>;

impl TestServer {
    fn prepare(opts: &Options) -> Result<(Arc<server::Shared>, LoadReport), StartError> {
        let cluster = if opts.default_namespaces { Cluster::with_default_namespaces() } else { Cluster::new() };
        let report = match &opts.fixtures {
            Some(dir) => fixtures::load_dir(&cluster, dir)
                .map_err(|source| StartError::Fixtures { path: dir.clone(), source })?,
            None => LoadReport::default(),
        };
        let faults = Faults::default();
        for f in &opts.faults {
            faults.add(f.clone());
        }
        let shared = Arc::new(server::Shared {
            cluster,
            faults,
            log: faults::RequestLog::default(),
            settings: server::Settings {
                aggregated_discovery: opts.aggregated_discovery,
                bookmark_interval: opts.bookmark_interval,
                kubernetes_version: opts.kubernetes_version.clone(),
                serve_tables: opts.serve_tables,
                serve_openapi: opts.serve_openapi,
            },
            address: std::sync::OnceLock::new(),
        });
        Ok((shared, report))
    }

    fn spawn(
        opts: &Options,
        shared: Arc<server::Shared>,
        ready: impl FnOnce(Ready) + Send + 'static,
    ) -> Result<(tokio::sync::oneshot::Sender<()>, std::thread::JoinHandle<()>), StartError> {
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel();
        let port = opts.port;
        let compaction = opts.compaction_interval;
        let thread = std::thread::Builder::new()
            .name(format!("kubesnap-testserver:{port}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                    Ok(rt) => rt,
                    Err(e) => return ready(Err(StartError::Thread(e))),
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                        Ok(l) => l,
                        Err(source) => return ready(Err(StartError::Bind { port, source })),
                    };
                    let addr = match listener.local_addr() {
                        Ok(a) => a,
                        Err(source) => return ready(Err(StartError::Bind { port, source })),
                    };
                    let _ = shared.address.set(format!("http://{addr}"));
                    if let Some(interval) = compaction {
                        tokio::spawn(server::compactor(shared.clone(), interval));
                    }
                    ready(Ok(addr));
                    server::run(shared, listener, shutdown_rx).await;
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(StartError::Thread)?;
        Ok((shutdown_tx, thread))
    }

    /// Starts a server and waits until it accepts connections. Blocks the calling thread
    /// briefly (fine in async tests too: the server has its own runtime).
    ///
    /// # Errors
    /// When fixtures cannot be read or the port cannot be bound.
    pub fn start(opts: Options) -> Result<TestServer, StartError> {
        let (shared, report) = Self::prepare(&opts)?;
        let (tx, rx) = std::sync::mpsc::channel();
        let (shutdown, thread) = Self::spawn(&opts, shared.clone(), move |r| {
            let _ = tx.send(r);
        })?;
        let addr = rx.recv().map_err(|_| StartError::Thread(std::io::Error::other("the server thread ended")))??;
        Ok(TestServer { shared, addr, report, shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// Starts a server without blocking the async caller.
    ///
    /// # Errors
    /// As [`TestServer::start`].
    pub async fn start_async(opts: Options) -> Result<TestServer, StartError> {
        let (shared, report) = Self::prepare(&opts)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (shutdown, thread) = Self::spawn(&opts, shared.clone(), move |r| {
            let _ = tx.send(r);
        })?;
        let addr = rx.await.map_err(|_| StartError::Thread(std::io::Error::other("the server thread ended")))??;
        Ok(TestServer { shared, addr, report, shutdown: Some(shutdown), thread: Some(thread) })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What loading the fixtures did.
    pub fn load_report(&self) -> &LoadReport {
        &self.report
    }

    /// A kubeconfig pointing at this server (no credentials; namespace `default`).
    pub fn kubeconfig(&self) -> String {
        kubeconfig_for(&self.url())
    }

    /// Writes [`TestServer::kubeconfig`] to `path` (atomically: a temporary file, renamed).
    ///
    /// # Errors
    /// An I/O error.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        write_kubeconfig_file(path, &self.url())
    }

    /// The active faults; add and remove them at any time.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every request so far (method, path, query, status, verb, resource...).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.all()
    }

    /// Forgets the request log.
    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// The cluster's types and objects, to inspect or change directly
    /// ([`Cluster::get_object`], [`Cluster::put_object`], [`Cluster::compact`]...).
    pub fn store(&self) -> &Cluster {
        &self.shared.cluster
    }

    /// Stops the server and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// A kubeconfig for a server URL.
pub fn kubeconfig_for(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubesnap-testserver\n  cluster:\n    server: {url}\ncontexts:\n- name: kubesnap-testserver\n  context:\n    cluster: kubesnap-testserver\n    user: kubesnap-testserver\n    namespace: default\ncurrent-context: kubesnap-testserver\nusers:\n- name: kubesnap-testserver\n  user: {{}}\npreferences: {{}}\n"
    )
}

/// Writes a kubeconfig for `url` atomically.
///
/// # Errors
/// An I/O error.
pub fn write_kubeconfig_file(path: &Path, url: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-kubesnap-testserver");
    std::fs::write(&tmp, kubeconfig_for(url))?;
    std::fs::rename(&tmp, path)
}

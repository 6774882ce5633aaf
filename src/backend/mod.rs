//! Storage: a small synchronous trait over `object_store`, and its implementations.
//!
//! The repository needs only six things of a store, each with a written contract below. Every
//! backend and every decorator (the cache in `crate::cache`) is checked by one conformance
//! suite (`tests/backend_conformance.rs`).
//!
//! The trait is synchronous: the engine is plain threads. [`ObjectStoreBackend`] owns a Tokio
//! runtime and blocks on it, so it must not be called from inside an async task (async callers
//! use `spawn_blocking`).

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
pub mod fault;
pub mod retry;

use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{name}: {message}")]
    Other { name: String, message: String },
    #[error("{0}")]
    Config(String),
    /// The store answered inconsistently (an upload it acknowledged holds other bytes).
    #[error("the store is not reliable: {0}")]
    Integrity(String),
}

/// The outcome of a create-only write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This call created the object.
    New,
    /// An object already existed under that name; nothing was written.
    AlreadyExists,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
    /// When the store last wrote it, by the store's clock (used only to judge whether an
    /// unreferenced file is an old leftover).
    pub last_modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// What the repository needs of a store. Names are `/`-separated relative paths of ASCII
/// letters, digits, `.`, `-` and `_`.
pub trait Backend: Send + Sync {
    /// A short description for messages (`file:///backups/repo`).
    fn location(&self) -> String;

    /// The whole object. `NotFound` when there is none.
    fn get(&self, name: &str) -> Result<Bytes, BackendError>;

    /// Bytes `range` of an object; exactly that many bytes, or an error (never a short read
    /// returned as success).
    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes, BackendError>;

    /// At least the last `n` bytes of an object (all of it if it is shorter) and the object's
    /// size. An implementation may return more, up to the whole object (a cache that holds the
    /// whole object does): callers locate bytes from the end, using the returned length.
    fn get_tail(&self, name: &str, n: u64) -> Result<(Bytes, u64), BackendError>;

    /// Writes an object only if none exists under the name, atomically: readers see all of it
    /// or nothing. When two writers race on one name, exactly one gets `Created::New`.
    fn put_new(&self, name: &str, bytes: Bytes) -> Result<Created, BackendError>;

    /// Every object whose name starts with `prefix` and sorts after `after` (when given),
    /// sorted by name.
    fn list(&self, prefix: &str, after: Option<&str>) -> Result<Vec<ObjectInfo>, BackendError>;

    /// Removes an object; removing one that does not exist is not an error.
    fn delete(&self, name: &str) -> Result<(), BackendError>;
}

/// Any `object_store` store as a [`Backend`].
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    runtime: tokio::runtime::Runtime,
    location: String,
}

impl ObjectStoreBackend {
    pub fn new(store: Arc<dyn ObjectStore>, location: String) -> Result<Self, BackendError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BackendError::Config(format!("cannot start the I/O runtime: {e}")))?;
        Ok(ObjectStoreBackend { store, runtime, location })
    }

    /// A store kept in memory, for tests.
    pub fn memory() -> Self {
        // Building a runtime fails only when the OS refuses threads; tests may panic then.
        Self::new(Arc::new(object_store::memory::InMemory::new()), "memory:".into()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A folder on a local filesystem (created if missing).
    pub fn local(path: &std::path::Path) -> Result<Self, BackendError> {
        std::fs::create_dir_all(path)
            .map_err(|e| BackendError::Config(format!("cannot create {}: {e}", path.display())))?;
        let abs =
            path.canonicalize().map_err(|e| BackendError::Config(format!("cannot open {}: {e}", path.display())))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&abs)
            .map_err(|e| BackendError::Config(format!("cannot open {}: {e}", abs.display())))?
            .with_automatic_cleanup(true)
            // Durable on power loss too: a commit-log entry must never name files not yet on disk.
            .with_fsync(true);
        Self::new(Arc::new(fs), format!("file://{}", abs.display()))
    }

    fn map(&self, name: &str, e: object_store::Error) -> BackendError {
        match e {
            object_store::Error::NotFound { .. } => BackendError::NotFound(name.to_owned()),
            // Without conditional creates two writers could both "win" a log entry: refuse.
            object_store::Error::NotImplemented { operation, .. } => BackendError::Config(format!(
                "{}: the store cannot do {operation}; kubesnap needs conditional creates (If-None-Match) to let writers share a repository safely",
                self.location
            )),
            other => BackendError::Other { name: name.to_owned(), message: other.to_string() },
        }
    }
}

/// Opens a repository location without options: see [`open_with`].
pub fn open(url: &str) -> Result<Arc<dyn Backend>, BackendError> {
    open_with(url, &[])
}

/// Opens a repository location:
/// - a path or `file://PATH` (a local folder);
/// - `s3://BUCKET/PREFIX` (AWS S3 and S3-compatible stores), `gs://BUCKET/PREFIX` (Google Cloud
///   Storage), `az://CONTAINER/PREFIX` (Azure Blob Storage), each configured from its cloud's
///   environment variables as object_store reads them (`AWS_ACCESS_KEY_ID`,
///   `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`,
///   `AWS_WEB_IDENTITY_TOKEN_FILE`...; `GOOGLE_SERVICE_ACCOUNT`...; `AZURE_STORAGE_ACCOUNT_NAME`,
///   `AZURE_STORAGE_ACCOUNT_KEY`...), then from `options` (object_store's configuration keys,
///   such as `endpoint`, `region`, `virtual_hosted_style_request`, `allow_http`), which win;
/// - `memory:` (tests).
///
/// Every store is wrapped in a [`retry::RetryBackend`] (retries, checked uploads and reads).
pub fn open_with(url: &str, options: &[(String, String)]) -> Result<Arc<dyn Backend>, BackendError> {
    let inner: Arc<dyn Backend> = if url == "memory:" {
        Arc::new(ObjectStoreBackend::memory())
    } else if let Some((scheme, _)) = url.split_once("://").filter(|(s, _)| *s != "file") {
        Arc::new(cloud(scheme, url, options)?)
    } else {
        if !options.is_empty() {
            return Err(BackendError::Config("--option applies to s3://, gs:// and az:// locations only".into()));
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        if path.is_empty() {
            return Err(BackendError::Config("empty repository location".into()));
        }
        Arc::new(ObjectStoreBackend::local(std::path::Path::new(path))?)
    };
    Ok(Arc::new(retry::RetryBackend::new(inner, retry::RetryPolicy::default())))
}

fn cloud(scheme: &str, url: &str, options: &[(String, String)]) -> Result<ObjectStoreBackend, BackendError> {
    let bad = |m: String| BackendError::Config(format!("{url}: {m}"));
    let rest = &url[scheme.len() + 3..];
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("no bucket (or container) in the location".into()));
    }
    let prefix = prefix.trim_matches('/');
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" => {
            use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
            let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
            for (k, v) in options {
                let key: AmazonS3ConfigKey = k.parse().map_err(|_| bad(format!("unknown S3 option {k:?}")))?;
                b = b.with_config(key, v);
            }
            // S3 checks each upload against its SHA-256.
            b = b.with_checksum_algorithm(object_store::aws::Checksum::SHA256);
            Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
        }
        "gs" => {
            use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
            let mut b = GoogleCloudStorageBuilder::from_env().with_bucket_name(bucket);
            for (k, v) in options {
                let key: GoogleConfigKey = k.parse().map_err(|_| bad(format!("unknown GCS option {k:?}")))?;
                b = b.with_config(key, v);
            }
            Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
        }
        "az" | "azure" => {
            use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
            let mut b = MicrosoftAzureBuilder::from_env().with_container_name(bucket);
            for (k, v) in options {
                let key: AzureConfigKey = k.parse().map_err(|_| bad(format!("unknown Azure option {k:?}")))?;
                b = b.with_config(key, v);
            }
            Arc::new(b.build().map_err(|e| bad(e.to_string()))?)
        }
        other => {
            return Err(BackendError::Config(format!(
                "{url}: unknown scheme {other:?}: use a path, file://, s3://, gs:// or az://"
            )))
        }
    };
    let store: Arc<dyn ObjectStore> =
        if prefix.is_empty() { store } else { Arc::new(object_store::prefix::PrefixStore::new(store, prefix)) };
    ObjectStoreBackend::new(store, url.trim_end_matches('/').to_string())
}

impl Backend for ObjectStoreBackend {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn get(&self, name: &str) -> Result<Bytes, BackendError> {
        let path = StorePath::from(name);
        self.runtime.block_on(async {
            let r = self.store.get(&path).await.map_err(|e| self.map(name, e))?;
            let size = r.meta.size;
            let b = r.bytes().await.map_err(|e| self.map(name, e))?;
            if b.len() as u64 != size {
                return Err(BackendError::Other {
                    name: name.to_owned(),
                    message: format!("short read: the object has {size} bytes, got {}", b.len()),
                });
            }
            Ok(b)
        })
    }

    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes, BackendError> {
        let path = StorePath::from(name);
        let want = range.end.saturating_sub(range.start);
        let b = self.runtime.block_on(self.store.get_range(&path, range.clone())).map_err(|e| self.map(name, e))?;
        if b.len() as u64 != want {
            return Err(BackendError::Other {
                name: name.to_owned(),
                message: format!("short read: asked for {want} bytes at {}, got {}", range.start, b.len()),
            });
        }
        Ok(b)
    }

    fn get_tail(&self, name: &str, n: u64) -> Result<(Bytes, u64), BackendError> {
        let path = StorePath::from(name);
        self.runtime.block_on(async {
            let opts = GetOptions { range: Some(GetRange::Suffix(n)), ..Default::default() };
            let r = match self.store.get_opts(&path, opts).await {
                Ok(r) => r,
                // Azure has no suffix ranges: the size first, then an ordinary range.
                Err(object_store::Error::NotSupported { .. }) => {
                    let meta = self.store.head(&path).await.map_err(|e| self.map(name, e))?;
                    let start = meta.size.saturating_sub(n);
                    let opts = GetOptions { range: Some(GetRange::Bounded(start..meta.size)), ..Default::default() };
                    if meta.size == 0 {
                        return Ok((Bytes::new(), 0));
                    }
                    self.store.get_opts(&path, opts).await.map_err(|e| self.map(name, e))?
                }
                Err(e) => return Err(self.map(name, e)),
            };
            let size = r.meta.size;
            let b = r.bytes().await.map_err(|e| self.map(name, e))?;
            if b.len() as u64 != n.min(size) {
                return Err(BackendError::Other { name: name.to_owned(), message: "short read of the tail".into() });
            }
            Ok((b, size))
        })
    }

    fn put_new(&self, name: &str, bytes: Bytes) -> Result<Created, BackendError> {
        let path = StorePath::from(name);
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.runtime.block_on(self.store.put_opts(&path, PutPayload::from_bytes(bytes), opts)) {
            Ok(_) => Ok(Created::New),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(Created::AlreadyExists),
            Err(e) => Err(self.map(name, e)),
        }
    }

    fn list(&self, prefix: &str, after: Option<&str>) -> Result<Vec<ObjectInfo>, BackendError> {
        let p = StorePath::from(prefix.trim_end_matches('/'));
        let stream = match after {
            Some(a) => self.store.list_with_offset(Some(&p), &StorePath::from(a)),
            None => self.store.list(Some(&p)),
        };
        let metas: Vec<_> = self.runtime.block_on(stream.try_collect()).map_err(|e| self.map(prefix, e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .map(|m| ObjectInfo { name: m.location.to_string(), size: m.size, last_modified: Some(m.last_modified) })
            .filter(|o| o.name.starts_with(prefix) && after.is_none_or(|a| o.name.as_str() > a))
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn delete(&self, name: &str) -> Result<(), BackendError> {
        let path = StorePath::from(name);
        match self.runtime.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map(name, e)),
        }
    }
}

/// Counts the reads that reach the wrapped backend: how many stored objects (or ranges of
/// them) an operation touched, and how many bytes. Used by `--stats` and the benchmarks.
pub struct CountingBackend {
    inner: Arc<dyn Backend>,
    reads: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
    writes: std::sync::atomic::AtomicU64,
}

impl CountingBackend {
    pub fn new(inner: Arc<dyn Backend>) -> CountingBackend {
        CountingBackend { inner, reads: 0.into(), bytes: 0.into(), writes: 0.into() }
    }

    /// (reads, bytes read, writes) so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.reads.load(Relaxed), self.bytes.load(Relaxed), self.writes.load(Relaxed))
    }

    fn count(&self, n: usize) {
        use std::sync::atomic::Ordering::Relaxed;
        self.reads.fetch_add(1, Relaxed);
        self.bytes.fetch_add(n as u64, Relaxed);
    }
}

impl Backend for CountingBackend {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn get(&self, name: &str) -> Result<Bytes, BackendError> {
        let b = self.inner.get(name)?;
        self.count(b.len());
        Ok(b)
    }
    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes, BackendError> {
        let b = self.inner.get_range(name, range)?;
        self.count(b.len());
        Ok(b)
    }
    fn get_tail(&self, name: &str, n: u64) -> Result<(Bytes, u64), BackendError> {
        let (b, size) = self.inner.get_tail(name, n)?;
        self.count(b.len());
        Ok((b, size))
    }
    fn put_new(&self, name: &str, bytes: Bytes) -> Result<Created, BackendError> {
        self.writes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.put_new(name, bytes)
    }
    fn list(&self, prefix: &str, after: Option<&str>) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list(prefix, after)
    }
    fn delete(&self, name: &str) -> Result<(), BackendError> {
        self.inner.delete(name)
    }
}

//! The local cache: a SQLite file per repository holding copies of immutable stored files.
//!
//! It is never the source of truth. It holds only bytes exactly as the repository stores them
//! (sealed, so never decrypted Secret data), each with its BLAKE3, and can be deleted at any
//! time: it is rebuilt from the repository as files are read again. What it caches: index
//! files, snapshot manifests, commit-log entries and checkpoints (all immutable once written),
//! and frames read from tree packs. Listings and data frames always go to the store.
//!
//! [`CachedBackend`] is a decorator: it wraps any [`Backend`] and is itself one.
//!
//! It also remembers, for snapshots of dump folders, what each source file (by a keyed hash of
//! its bytes) was stored as: an unchanged file is then not parsed again. Those rows are sealed
//! with the repository key (they name resources), hold ids and sizes, never content, and every
//! id is checked against the index before it is reused.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};

use crate::backend::{Backend, BackendError, Created, ObjectInfo};

/// Where caches live when `--cache-dir` is not given: `$XDG_CACHE_HOME/kubesnap` or
/// `~/.cache/kubesnap`.
pub fn default_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("kubesnap"))
}

fn cacheable(name: &str) -> bool {
    ["index/", "snapshots/", "log/", "checkpoints/", "tree/"].iter().any(|p| name.starts_with(p))
}

/// The cache database of one repository.
pub struct Cache {
    db: Mutex<Connection>,
}

impl Cache {
    /// Opens (or creates) the cache of repository `repo_id` under `dir`. A cache that cannot
    /// be read (damaged, another program's file) is deleted and made anew: it holds nothing
    /// that the repository does not.
    pub fn open(dir: &Path, repo_id: &str) -> Result<Arc<Cache>, String> {
        let folder = dir.join(repo_id);
        std::fs::create_dir_all(&folder).map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
        let path = folder.join("cache.sqlite");
        let open = || -> Result<Cache, String> {
            let conn = Connection::open(&path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            Self::init(conn)
        };
        match open() {
            Ok(c) => Ok(Arc::new(c)),
            Err(_) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                open().map(Arc::new)
            }
        }
    }

    /// A cache that lives in memory only.
    pub fn in_memory() -> Result<Arc<Cache>, String> {
        let conn = Connection::open_in_memory().map_err(|e| e.to_string())?;
        Self::init(conn).map(Arc::new)
    }

    fn init(conn: Connection) -> Result<Cache, String> {
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(|e| e.to_string())?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS files (
                name TEXT NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
                hash BLOB NOT NULL, bytes BLOB NOT NULL, PRIMARY KEY (name, start, end));
             CREATE TABLE IF NOT EXISTS source_files (
                key BLOB PRIMARY KEY, objects BLOB NOT NULL);",
        )
        .map_err(|e| format!("cannot prepare the cache: {e}"))?;
        Ok(Cache { db: Mutex::new(conn) })
    }

    /// What source files with these keyed hashes were stored as last time (opaque bytes written
    /// by [`Cache::remember_source_files`]), where remembered. One transaction for the batch.
    pub fn source_files(&self, keys: &[[u8; 32]]) -> Vec<Option<Vec<u8>>> {
        let none = || keys.iter().map(|_| None).collect();
        let Ok(mut db) = self.db.lock() else { return none() };
        let Ok(tx) = db.transaction() else { return none() };
        let out = match tx.prepare_cached("SELECT objects FROM source_files WHERE key = ?1") {
            Ok(mut stmt) => keys
                .iter()
                .map(|k| stmt.query_row(params![k.as_slice()], |r| r.get(0)).optional().ok().flatten())
                .collect(),
            Err(_) => none(),
        };
        let _ = tx.commit();
        out
    }

    /// Remembers source files (keyed hash of their bytes -> what they were stored as). Holds ids
    /// and sizes only, never content.
    pub fn remember_source_files(&self, rows: &[(Vec<u8>, Vec<u8>)]) {
        let Ok(mut db) = self.db.lock() else { return };
        let Ok(tx) = db.transaction() else { return };
        for (k, v) in rows {
            let _ = tx.execute("INSERT OR REPLACE INTO source_files (key, objects) VALUES (?1, ?2)", params![k, v]);
        }
        let _ = tx.commit();
    }
}

pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    cache: Arc<Cache>,
}

impl CachedBackend {
    /// Opens (or creates) the cache of repository `repo_id` under `dir` around `inner`.
    pub fn open(inner: Arc<dyn Backend>, dir: &Path, repo_id: &str) -> Result<CachedBackend, String> {
        Ok(CachedBackend { inner, cache: Cache::open(dir, repo_id)? })
    }

    pub fn new(inner: Arc<dyn Backend>, cache: Arc<Cache>) -> CachedBackend {
        CachedBackend { inner, cache }
    }

    fn lookup(&self, name: &str, start: i64, end: i64) -> Option<Bytes> {
        let db = self.cache.db.lock().ok()?;
        let row: Option<(Vec<u8>, Vec<u8>)> = db
            .query_row(
                "SELECT hash, bytes FROM files WHERE name = ?1 AND start = ?2 AND end = ?3",
                params![name, start, end],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .ok()
            .flatten();
        let (hash, bytes) = row?;
        if blake3::hash(&bytes).as_bytes().as_slice() != hash.as_slice() {
            // Damaged on local disk: forget it and read the store again.
            let _ = db.execute("DELETE FROM files WHERE name = ?1", params![name]);
            return None;
        }
        Some(Bytes::from(bytes))
    }

    fn store(&self, name: &str, start: i64, end: i64, bytes: &[u8]) {
        if let Ok(db) = self.cache.db.lock() {
            // A cache that cannot be written is only slower: ignore the error.
            let _ = db.execute(
                "INSERT OR REPLACE INTO files (name, start, end, hash, bytes) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, start, end, blake3::hash(bytes).as_bytes().as_slice(), bytes],
            );
        }
    }

    /// Drops cached copies of files that the store no longer has (after prune or forget).
    pub fn forget(&self, name: &str) {
        if let Ok(db) = self.cache.db.lock() {
            let _ = db.execute("DELETE FROM files WHERE name = ?1", params![name]);
        }
    }
}

impl Backend for CachedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn get(&self, name: &str) -> Result<Bytes, BackendError> {
        if !cacheable(name) {
            return self.inner.get(name);
        }
        if let Some(b) = self.lookup(name, 0, -1) {
            return Ok(b);
        }
        let b = self.inner.get(name)?;
        self.store(name, 0, -1, &b);
        Ok(b)
    }

    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes, BackendError> {
        if !cacheable(name) {
            return self.inner.get_range(name, range);
        }
        let (s, e) = (range.start as i64, range.end as i64);
        if let Some(b) = self.lookup(name, s, e) {
            return Ok(b);
        }
        if let Some(whole) = self.lookup(name, 0, -1) {
            if range.end as usize <= whole.len() {
                return Ok(whole.slice(range.start as usize..range.end as usize));
            }
        }
        let b = self.inner.get_range(name, range)?;
        self.store(name, s, e, &b);
        Ok(b)
    }

    fn get_tail(&self, name: &str, n: u64) -> Result<(Bytes, u64), BackendError> {
        if !cacheable(name) {
            return self.inner.get_tail(name, n);
        }
        if let Some(whole) = self.lookup(name, 0, -1) {
            // All of it: the caller can then read any part without asking again.
            let size = whole.len() as u64;
            return Ok((whole, size));
        }
        let (b, size) = self.inner.get_tail(name, n)?;
        if b.len() as u64 == size {
            self.store(name, 0, -1, &b);
        }
        Ok((b, size))
    }

    fn put_new(&self, name: &str, bytes: Bytes) -> Result<Created, BackendError> {
        let r = self.inner.put_new(name, bytes.clone())?;
        if r == Created::New && cacheable(name) && !name.starts_with("tree/") {
            self.store(name, 0, -1, &bytes);
        }
        Ok(r)
    }

    fn list(&self, prefix: &str, after: Option<&str>) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list(prefix, after)
    }

    fn delete(&self, name: &str) -> Result<(), BackendError> {
        self.forget(name);
        self.inner.delete(name)
    }
}

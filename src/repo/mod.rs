//! The repository engine: opening with a password, reading and writing stored files, the
//! commit log, the index, packs and trees.
//!
//! Every byte read back is authenticated: whole files by their content hash (their name) and
//! AEAD, frames by AEAD and then each blob by recomputing its keyed id. Nothing stored is ever
//! overwritten: every write is a create-only put.

pub mod commitlog;
pub mod index;
pub mod packer;
pub mod tree;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;

use crate::backend::{Backend, BackendError, CountingBackend, Created};
use crate::cache::{Cache, CachedBackend};
use crate::crypto::{self, KdfParams, MasterKey};
use crate::format::config::{Access, Config};
use crate::format::index::BlobLocation;
use crate::format::key::{Kdf, KeyFile};
use crate::format::log::SnapshotSummary;
use crate::format::pack::{frame_context, Compression, PackKind};
use crate::format::snapshot::SnapshotManifest;
use crate::format::{aad, content_hash, BlobId, FileHeader, FileType, IndexId, KeyId, PackId, RepoId, SnapshotId};
use crate::{Error, Result};

pub use commitlog::{LogChange, LogState};
pub use index::IndexSet;

/// How to open a repository.
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// Where the cache lives; None: the default cache folder.
    pub cache_dir: Option<PathBuf>,
    /// Do not read or write a cache on disk.
    pub no_cache: bool,
}

/// The detail of a `Corrupt` error for a pack the index lists but the store lacks.
const PACK_MISSING: &str = "it is missing";

pub fn pack_name(kind: PackKind, id: &PackId) -> String {
    let hex = id.to_hex();
    let dir = match kind {
        PackKind::Data => "data",
        PackKind::Tree => "tree",
    };
    format!("{dir}/{}/{hex}", &hex[..2])
}

pub fn index_name(id: &IndexId) -> String {
    format!("index/{id}")
}

pub fn snapshot_name(id: &SnapshotId) -> String {
    format!("snapshots/{id}")
}

pub fn key_name(id: &KeyId) -> String {
    format!("keys/{id}")
}

pub const CONFIG_NAME: &str = "config";

pub struct Repository {
    backend: Arc<dyn Backend>,
    counter: Arc<CountingBackend>,
    cache: Option<Arc<Cache>>,
    key: MasterKey,
    config: Config,
    access: Access,
    key_id: KeyId,
    state: LogState,
    index: IndexSet,
    frames: Mutex<FrameCache>,
}

/// A small cache of decompressed frames: tree walks read many nodes from one frame.
struct FrameCache {
    map: HashMap<(PackId, u64), Arc<Vec<u8>>>,
    order: std::collections::VecDeque<(PackId, u64)>,
    bytes: usize,
}

const FRAME_CACHE_BYTES: usize = 64 << 20;

impl FrameCache {
    fn get(&self, k: &(PackId, u64)) -> Option<Arc<Vec<u8>>> {
        self.map.get(k).cloned()
    }
    fn put(&mut self, k: (PackId, u64), v: Arc<Vec<u8>>) {
        self.bytes += v.len();
        if self.map.insert(k, v).is_none() {
            self.order.push_back(k);
        }
        while self.bytes > FRAME_CACHE_BYTES {
            let Some(old) = self.order.pop_front() else { break };
            if let Some(v) = self.map.remove(&old) {
                self.bytes -= v.len();
            }
        }
    }
}

fn backend_err(e: BackendError) -> Error {
    Error::Backend(e)
}

fn now_string() -> String {
    crate::timeutil::format(&crate::timeutil::now())
}

/// This machine's name, recorded in key files, manifests and log entries.
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// Manifests and checkpoints are stored as one zstd frame of JSON.
pub(crate) fn zstd_json(json: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(json, 9).unwrap_or_default()
}

/// The most a stored zstd-compressed JSON object may expand to.
const MAX_JSON: usize = 256 << 20;

pub(crate) fn unzstd(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    zstd::bulk::decompress(bytes, MAX_JSON).map_err(|e| format!("does not decompress: {e}"))
}

/// Writes a new key file wrapping `master` under `password`.
fn write_key_file(backend: &dyn Backend, master: &MasterKey, password: &[u8], kdf: KdfParams) -> Result<KeyId> {
    let mut salt = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
    let kek = crypto::password_key(password, &salt, kdf).map_err(|e| Error::Usage(format!("KDF parameters: {e}")))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let kf = KeyFile {
        version: 1,
        created: now_string(),
        hostname: hostname(),
        username: std::env::var("USER").unwrap_or_default(),
        kdf: Kdf {
            algorithm: "argon2id".into(),
            argon2_version: 19,
            m_cost: kdf.m_cost,
            t_cost: kdf.t_cost,
            p_cost: kdf.p_cost,
            salt: b64.encode(salt),
        },
        wrapped: b64.encode(crypto::wrap_master(&kek, master)),
    };
    let mut bytes = FileHeader::encode(FileType::Key).to_vec();
    bytes.extend_from_slice(&kf.encode());
    let id = KeyId(content_hash(&bytes));
    backend.put_new(&key_name(&id), Bytes::from(bytes)).map_err(backend_err)?;
    Ok(id)
}

/// Tries one key file with a password; Ok(None) when the password does not open it.
fn try_key_file(bytes: &[u8], password: &[u8], name: &str) -> Result<Option<MasterKey>> {
    let body = FileHeader::decode(bytes, FileType::Key).map_err(|e| Error::from_format("key file", name, e))?;
    let kf = KeyFile::decode(body).map_err(|e| Error::from_format("key file", name, e))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let salt = b64.decode(&kf.kdf.salt).map_err(|e| Error::corrupt("key file", name, e))?;
    let wrapped = b64.decode(&kf.wrapped).map_err(|e| Error::corrupt("key file", name, e))?;
    let params = KdfParams { m_cost: kf.kdf.m_cost, t_cost: kf.kdf.t_cost, p_cost: kf.kdf.p_cost };
    let kek = crypto::password_key(password, &salt, params).map_err(|e| Error::corrupt("key file", name, e))?;
    Ok(crypto::unwrap_master(&kek, &wrapped).ok())
}

impl Repository {
    /// Creates a repository: a key file for `password`, then the config (which marks the
    /// location as a repository). Refuses a location that already has a config.
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        kdf: KdfParams,
        tune: impl FnOnce(&mut Config),
    ) -> Result<RepoId> {
        let location = backend.location();
        match backend.get(CONFIG_NAME) {
            Ok(_) => return Err(Error::RepositoryExists(location)),
            Err(BackendError::NotFound(_)) => {}
            Err(e) => return Err(backend_err(e)),
        }
        let master = MasterKey::generate();
        let mut id = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut id);
        let mut config = Config::new(RepoId(id), now_string());
        tune(&mut config);
        if !(1..=22).contains(&config.packing.zstd_level)
            || config.packing.frame_target < 1024
            || config.packing.frame_target > 16 << 20
        {
            return Err(Error::Usage("zstd level must be 1..=22 and the frame target 1 KiB..16 MiB".into()));
        }
        let key_id = write_key_file(backend.as_ref(), &master, password, kdf)?;
        let mut bytes = FileHeader::encode(FileType::Config).to_vec();
        bytes.extend_from_slice(&master.seal(&aad(FileType::Config, b"", b""), &config.encode()));
        match backend.put_new(CONFIG_NAME, Bytes::from(bytes)).map_err(backend_err)? {
            Created::New => Ok(config.id),
            Created::AlreadyExists => {
                let _ = backend.delete(&key_name(&key_id));
                Err(Error::RepositoryExists(location))
            }
        }
    }

    /// Opens a repository with a password.
    pub fn open(raw: Arc<dyn Backend>, password: &[u8], opts: &OpenOptions) -> Result<Repository> {
        let location = raw.location();
        let config_bytes = match raw.get(CONFIG_NAME) {
            Ok(b) => b,
            Err(BackendError::NotFound(_)) => return Err(Error::NoRepository(location)),
            Err(e) => return Err(backend_err(e)),
        };
        let keys = raw.list("keys/", None).map_err(backend_err)?;
        let body =
            FileHeader::decode(&config_bytes, FileType::Config).map_err(|e| Error::from_format("config", "", e))?;
        // Every key file is tried: one that is damaged, of a newer version, or that unwraps a
        // key which does not open this config (copied from another repository) is skipped.
        let mut found = None;
        let mut skipped: Vec<String> = Vec::new();
        for k in &keys {
            let bytes = raw.get(&k.name).map_err(backend_err)?;
            let id_hex = k.name.trim_start_matches("keys/");
            if hex::encode(content_hash(&bytes)) != id_hex {
                skipped.push(format!("{}: content does not match its name", k.name));
                continue;
            }
            match try_key_file(&bytes, password, &k.name) {
                Ok(Some(m)) => match m.open(&aad(FileType::Config, b"", b""), body) {
                    Ok(plain) => {
                        found = Some((m, KeyId::from_hex(id_hex).unwrap_or_default(), plain));
                        break;
                    }
                    Err(_) => skipped.push(format!("{}: its key does not open this repository's config", k.name)),
                },
                Ok(None) => {}
                Err(e) => skipped.push(e.to_string()),
            }
        }
        let Some((key, key_id, plain)) = found else {
            if keys.is_empty() {
                return Err(Error::corrupt("repository", location, "it has a config but no key files"));
            }
            if skipped.len() == keys.len() {
                return Err(Error::corrupt(
                    "repository",
                    location,
                    format!("no key file is usable: {}", skipped.join("; ")),
                ));
            }
            return Err(Error::WrongPassword(keys.len()));
        };
        let (config, access) = Config::decode(&plain).map_err(|e| Error::from_format("config", "", e))?;

        let counter = Arc::new(CountingBackend::new(raw));
        let counted: Arc<dyn Backend> = counter.clone();
        let cache = if opts.no_cache {
            None
        } else {
            // One cache per repository and location: two copies of a repository (same id) may
            // diverge and must not share cached log entries. No usable cache folder (a
            // read-only filesystem): work without one.
            let name = format!("{}-{}", config.id.to_hex(), &hex::encode(content_hash(location.as_bytes()))[..8]);
            opts.cache_dir.clone().or_else(crate::cache::default_dir).and_then(|d| Cache::open(&d, &name).ok())
        };
        let backend: Arc<dyn Backend> = match &cache {
            Some(c) => Arc::new(CachedBackend::new(counted, c.clone())),
            None => counted,
        };
        let mut repo = Repository {
            backend,
            counter,
            cache,
            key,
            config,
            access,
            key_id,
            state: LogState::default(),
            index: IndexSet::default(),
            frames: Mutex::new(FrameCache { map: HashMap::new(), order: Default::default(), bytes: 0 }),
        };
        repo.refresh()?;
        Ok(repo)
    }

    /// Reads new commit-log entries and updates the live snapshots and index files.
    pub fn refresh(&mut self) -> Result<()> {
        let replayed = commitlog::advance(self)?;
        self.index.set_files(&self.state.index);
        if replayed >= commitlog::CHECKPOINT_EVERY && self.writable() {
            // Best effort: a later reader starts from here instead of replaying the log.
            let _ = commitlog::write_checkpoint(self);
        }
        Ok(())
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// The local cache, unless disabled.
    pub fn cache(&self) -> Option<&Arc<Cache>> {
        self.cache.as_ref()
    }

    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn id(&self) -> RepoId {
        self.config.id
    }

    pub fn state(&self) -> &LogState {
        &self.state
    }

    pub(crate) fn state_mut(&mut self) -> &mut LogState {
        &mut self.state
    }

    pub fn index(&self) -> &IndexSet {
        &self.index
    }

    pub fn writable(&self) -> bool {
        self.access == Access::ReadWrite
    }

    /// (stored objects read, bytes read, objects written) since the repository was opened,
    /// counting only what reached the store (not the cache).
    pub fn io_counts(&self) -> (u64, u64, u64) {
        self.counter.counts()
    }

    /// Live snapshots in listing order: by time, ties by commit order.
    pub fn snapshots(&self) -> Vec<SnapshotSummary> {
        let mut v = self.state.snapshots.clone();
        v.sort_by_key(|s| crate::timeutil::parse_stored(&s.time));
        v
    }

    /// Reads a content-named, sealed file and checks its name, header and seal.
    pub(crate) fn read_sealed_file(
        &self,
        name: &str,
        ft: FileType,
        context: &[u8],
        expect_hash: Option<&[u8; 32]>,
    ) -> Result<(Vec<u8>, [u8; 32])> {
        let bytes = match self.backend.get(name) {
            Ok(b) => b,
            Err(BackendError::NotFound(n)) => return Err(Error::corrupt(ft.name(), name, format!("{n} is missing"))),
            Err(e) => return Err(backend_err(e)),
        };
        let hash = content_hash(&bytes);
        if let Some(h) = expect_hash {
            if &hash != h {
                return Err(Error::corrupt(ft.name(), name, "its content does not match its name"));
            }
        }
        let body = FileHeader::decode(&bytes, ft).map_err(|e| Error::from_format(ft.name(), name, e))?;
        let plain = self
            .key
            .open(&aad(ft, b"", context), body)
            .map_err(|_| Error::corrupt(ft.name(), name, "it does not authenticate (damaged or altered)"))?;
        Ok((plain, hash))
    }

    /// Seals and writes a content-named file; returns its content hash and stored size.
    pub(crate) fn write_sealed_file(&self, dir: &str, ft: FileType, plain: &[u8]) -> Result<([u8; 32], u64)> {
        let mut bytes = FileHeader::encode(ft).to_vec();
        bytes.extend_from_slice(&self.key.seal(&aad(ft, b"", b""), plain));
        let hash = content_hash(&bytes);
        let len = bytes.len() as u64;
        self.backend.put_new(&format!("{dir}/{}", hex::encode(hash)), Bytes::from(bytes)).map_err(backend_err)?;
        Ok((hash, len))
    }

    pub fn load_manifest(&self, id: &SnapshotId) -> Result<SnapshotManifest> {
        let (sealed_plain, _) = self.read_sealed_file(&snapshot_name(id), FileType::Snapshot, b"", Some(&id.0))?;
        let plain = unzstd(&sealed_plain).map_err(|e| Error::corrupt("snapshot manifest", id.to_hex(), e))?;
        SnapshotManifest::decode(&plain).map_err(|e| Error::from_format("snapshot manifest", &id.to_hex(), e))
    }

    /// Writes a manifest; returns its id and stored size.
    pub fn write_manifest(&self, m: &SnapshotManifest) -> Result<(SnapshotId, u64)> {
        let (hash, len) = self.write_sealed_file("snapshots", FileType::Snapshot, &zstd_json(&m.encode()))?;
        Ok((SnapshotId(hash), len))
    }

    /// Where a blob is stored, if the repository has it.
    pub fn locate(&self, id: &BlobId) -> Result<Option<BlobLocation>> {
        self.index.lookup(self, id)
    }

    /// Reads, authenticates and decompresses one frame.
    pub fn read_frame(&self, loc: &BlobLocation) -> Result<Arc<Vec<u8>>> {
        let f = &loc.frame;
        let key = (f.pack, f.offset);
        if let Some(v) = self.frames.lock().ok().and_then(|c| c.get(&key)) {
            return Ok(v);
        }
        let name = pack_name(f.pack_kind, &f.pack);
        let sealed = match self.backend.get_range(&name, f.offset..f.offset + u64::from(f.sealed_length)) {
            Ok(b) => b,
            Err(BackendError::NotFound(_)) => return Err(Error::corrupt("pack", f.pack.to_hex(), PACK_MISSING)),
            Err(e) => return Err(backend_err(e)),
        };
        let ctx = frame_context(f.pack_kind, &f.frame_id);
        let compressed = self.key.open(&aad(FileType::Pack, b"frame", &ctx), &sealed).map_err(|_| {
            Error::corrupt("pack", f.pack.to_hex(), format!("the frame at byte {} does not authenticate", f.offset))
        })?;
        let raw = match f.compression {
            Compression::None => compressed,
            Compression::Zstd => zstd::bulk::decompress(&compressed, f.raw_length as usize).map_err(|e| {
                Error::corrupt(
                    "pack",
                    f.pack.to_hex(),
                    format!("the frame at byte {} does not decompress: {e}", f.offset),
                )
            })?,
        };
        if raw.len() != f.raw_length as usize {
            return Err(Error::corrupt("pack", f.pack.to_hex(), "a frame has the wrong length"));
        }
        let raw = Arc::new(raw);
        if let Ok(mut c) = self.frames.lock() {
            c.put(key, raw.clone());
        }
        Ok(raw)
    }

    /// Reads one blob and checks that its content hashes to its id.
    ///
    /// A pack that a concurrent prune removed (after repacking what stays) is not an error: the
    /// live index files are read again from the log and the blob is read where they say.
    pub fn read_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        let loc = self.locate(id)?.ok_or_else(|| Error::corrupt("blob", id.to_hex(), "no index file lists it"))?;
        match self.read_blob_at(id, &loc) {
            Err(Error::Corrupt { what, detail, .. }) if what == "pack" && detail == PACK_MISSING => {
                let state = commitlog::read_state(self)?;
                self.index.set_files(&state.index);
                let again = self.locate(id)?.ok_or_else(|| {
                    Error::corrupt(
                        "blob",
                        id.to_hex(),
                        "no index file lists it any more (a prune removed it meanwhile)",
                    )
                })?;
                if again.frame.pack == loc.frame.pack {
                    return Err(Error::corrupt("pack", loc.frame.pack.to_hex(), PACK_MISSING));
                }
                self.read_blob_at(id, &again)
            }
            other => other,
        }
    }

    pub fn read_blob_at(&self, id: &BlobId, loc: &BlobLocation) -> Result<Vec<u8>> {
        let frame = self.read_frame(loc)?;
        let start = loc.raw_offset as usize;
        let end = start + loc.raw_length as usize;
        let Some(bytes) = frame.get(start..end) else {
            return Err(Error::corrupt("blob", id.to_hex(), "it lies outside its frame"));
        };
        if self.key.blob_id(bytes) != *id {
            return Err(Error::corrupt("blob", id.to_hex(), "its content does not match its id"));
        }
        Ok(bytes.to_vec())
    }

    /// Commits a change to the repository's state through the commit log.
    pub fn commit(&mut self, change: LogChange) -> Result<u64> {
        self.commit_checked(change, &mut |_| Ok(()))
    }

    /// Commits a change after `check` accepted the state at the log's head (see
    /// [`commitlog::commit`]).
    pub fn commit_checked(
        &mut self,
        change: LogChange,
        check: &mut dyn FnMut(&Repository) -> Result<()>,
    ) -> Result<u64> {
        if !self.writable() {
            return Err(Error::UnsupportedFormat(
                "the repository uses features this kubesnap can read but not write: upgrade kubesnap".into(),
            ));
        }
        let seq = commitlog::commit(self, change, &mut |repo: &Repository| {
            // The lookups of the check must see the head's index files.
            repo.index.set_files(&repo.state.index);
            check(repo)
        })?;
        self.index.clear_pending();
        self.index.set_files(&self.state.index);
        Ok(seq)
    }

    /// Adds a key file for another password.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<KeyId> {
        write_key_file(self.backend.as_ref(), &self.key, password, kdf)
    }
}

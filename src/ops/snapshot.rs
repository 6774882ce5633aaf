//! `kubesnap snapshot`: store the objects of a source as a new snapshot.
//!
//! Files are parsed on every core; each object is split into desired state and server-owned
//! fields, canonicalised, hashed, and (when large) chunked by the workers. The main thread only
//! checks identities, asks the index whether each blob is new, and feeds new blobs to the
//! packer. Nothing becomes visible until the final commit-log entry: an invalid document, a
//! duplicate identity or a crash before it leaves the repository's snapshots as they were.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Progress;
use crate::chunker::chunk_ranges;
use crate::crypto::MasterKey;
use crate::format::config::Chunking;
use crate::format::log::SnapshotSummary;
use crate::format::pack::{BlobType, PackKind};
use crate::format::resource::{canonical_json, identity_of, is_controller_owned, split, ResourceRef};
use crate::format::snapshot::{Counts, SkippedType, SnapshotManifest, Source, TypeInfo};
use crate::format::tree::{PartRef, ResourceEntry};
use crate::format::{BlobId, SnapshotId};
use crate::k8s::dir::{self, DocError};
use crate::k8s::names::TypeTable;
use crate::repo::packer::Packer;
use crate::repo::tree::{self, TreeWriter};
use crate::repo::{index, LogChange, Repository};
use crate::{timeutil, Error, Result};

/// The cluster name of a snapshot when none is given.
pub const DEFAULT_CLUSTER: &str = "default";

#[derive(Clone, Debug, Default)]
pub struct SnapshotOptions {
    /// A dump folder to read.
    pub from_dir: PathBuf,
    /// The cluster the snapshot belongs to (default: [`DEFAULT_CLUSTER`]).
    pub cluster: Option<String>,
    pub tags: Vec<String>,
    /// The snapshot's time; default: when it started.
    pub time: Option<DateTime<Utc>>,
    /// Skip documents that are not named Kubernetes objects (with a warning) instead of failing.
    pub skip_invalid: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SnapshotReport {
    pub id: SnapshotId,
    pub time: String,
    pub cluster: String,
    pub objects: u64,
    pub added: u64,
    pub modified: u64,
    pub removed: u64,
    pub bytes_added: u64,
    /// Documents skipped by `--skip-invalid`.
    pub skipped_documents: u64,
    pub parent: Option<SnapshotId>,
}

/// One part ready for storage: its blobs (id, type, bytes) in order.
struct PreparedPart {
    size: u64,
    blobs: Vec<(BlobId, BlobType, Vec<u8>)>,
}

struct Prepared {
    resource: ResourceRef,
    doc: usize,
    owned: bool,
    desired: PreparedPart,
    server: Option<PreparedPart>,
    crd: Option<TypeInfo>,
}

/// What a source file was stored as, remembered in the cache under a keyed hash of its bytes so
/// that an unchanged file is not parsed again. Ids and sizes only.
#[derive(Serialize, serde::Deserialize)]
struct Remembered {
    resource: ResourceRef,
    doc: usize,
    owned: bool,
    desired: (u64, Vec<BlobId>),
    server: Option<(u64, Vec<BlobId>)>,
    crd: Option<TypeInfo>,
}

impl Remembered {
    fn entry(&self) -> ResourceEntry {
        let part = |(size, blobs): &(u64, Vec<BlobId>)| PartRef { size: *size, blobs: blobs.iter().copied().collect() };
        ResourceEntry {
            owned: self.owned,
            source_tag: None,
            desired: part(&self.desired),
            server: self.server.as_ref().map(part),
        }
    }
}

enum Outcome {
    Parsed(Vec<Prepared>, Vec<DocError>),
    Reused(Vec<Remembered>),
}

struct FileMessage {
    file: usize,
    key: Option<[u8; 32]>,
    outcome: Outcome,
}

/// The associated data sealing a remembered source file in the cache: names of resources stay
/// encrypted on local disk too, and a row cannot be moved to another file's key.
fn memo_aad(source_key: &[u8; 32]) -> Vec<u8> {
    let mut a = b"kubesnap source memo v1".to_vec();
    a.extend_from_slice(source_key);
    a
}

/// Parses a file that was read, or says why it could not be.
fn parse_read(key: &MasterKey, chunking: &Chunking, rel: &std::path::Path, read: std::io::Result<Vec<u8>>) -> Outcome {
    match read {
        Ok(bytes) => parse_prepared(key, chunking, rel, bytes),
        Err(e) => Outcome::Parsed(
            Vec::new(),
            vec![DocError { file: rel.display().to_string(), doc: 0, line: 0, message: format!("cannot read: {e}") }],
        ),
    }
}

/// Files a worker reads per batch.
const BATCH: usize = 64;

/// The cache key of a source file: keyed by the repository (so it reveals nothing without the
/// key) and by this program's version (whose canonicalisation made the blobs).
fn source_key(key: &MasterKey, bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key.id_key());
    h.update(b"kubesnap source file v1 ");
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(&[0]);
    h.update(bytes);
    *h.finalize().as_bytes()
}

fn parse_prepared(key: &MasterKey, chunking: &Chunking, rel: &std::path::Path, bytes: Vec<u8>) -> Outcome {
    let (objects, mut errs) = dir::parse_bytes(rel, bytes);
    let mut prepared = Vec::with_capacity(objects.len());
    for o in objects {
        match prepare(key, chunking, o.doc, o.value) {
            Ok(p) => prepared.push(p),
            Err(m) => errs.push(DocError { file: rel.display().to_string(), doc: o.doc, line: 0, message: m }),
        }
    }
    Outcome::Parsed(prepared, errs)
}

fn prepare_part(key: &MasterKey, chunking: &Chunking, bytes: Vec<u8>, whole_type: BlobType) -> PreparedPart {
    let size = bytes.len() as u64;
    let ranges = chunk_ranges(&bytes, chunking, key.chunker_seed());
    if ranges.len() == 1 {
        return PreparedPart { size, blobs: vec![(key.blob_id(&bytes), whole_type, bytes)] };
    }
    let blobs = ranges
        .into_iter()
        .map(|r| {
            let piece = bytes[r].to_vec();
            (key.blob_id(&piece), BlobType::Chunk, piece)
        })
        .collect();
    PreparedPart { size, blobs }
}

fn is_crd(r: &ResourceRef) -> bool {
    r.group == "apiextensions.k8s.io" && r.kind == "CustomResourceDefinition"
}

/// The identity and source tag of an object that has a uid and a resourceVersion.
fn source_tag_of(key: &MasterKey, variant: &str, value: &serde_json::Value) -> Option<(ResourceRef, [u8; 8])> {
    let r = identity_of(value).ok()?;
    let uid = value.pointer("/metadata/uid")?.as_str()?;
    let rv = value.pointer("/metadata/resourceVersion")?.as_str()?;
    let tag = key.source_tag(variant, [&r.group, &r.kind, &r.namespace, &r.name], uid, rv);
    Some((r, tag))
}

fn crd_type(value: &serde_json::Value) -> Option<TypeInfo> {
    Some(TypeTable::type_from_crd(value)?.into_type_info("crd"))
}

/// The blob ids a desired state (the first part of [`split`]) would be stored as, without
/// storing anything: equal ids mean equal desired state (what `diff --live` uses to skip
/// unchanged objects unread).
pub fn desired_blob_ids(repo: &Repository, desired: &serde_json::Value) -> Vec<BlobId> {
    let chunking = repo.config().chunking.clone();
    prepare_part(repo.key(), &chunking, canonical_json(desired), BlobType::Desired)
        .blobs
        .into_iter()
        .map(|(id, _, _)| id)
        .collect()
}

fn prepare(
    key: &MasterKey,
    chunking: &Chunking,
    doc: usize,
    value: serde_json::Value,
) -> std::result::Result<Prepared, String> {
    let resource = identity_of(&value).map_err(|e| e.to_string())?;
    let owned = is_controller_owned(&value);
    let crd = if is_crd(&resource) { crd_type(&value) } else { None };
    let parts = split(value);
    let desired = prepare_part(key, chunking, canonical_json(&parts.desired), BlobType::Desired);
    let server = parts.server.map(|s| prepare_part(key, chunking, canonical_json(&s), BlobType::Server));
    Ok(Prepared { resource, doc, owned, desired, server, crd })
}

/// The packer's similarity key: type, then kind, group, name, namespace, chunk number.
fn sort_key(r: &ResourceRef, blob_type: BlobType, part: u8, chunk: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(r.kind.len() + r.group.len() + r.name.len() + r.namespace.len() + 12);
    k.push(if blob_type == BlobType::Chunk { part } else { blob_type as u8 });
    for s in [&r.kind, &r.group, &r.name, &r.namespace] {
        k.extend_from_slice(s.as_bytes());
        k.push(0);
    }
    k.extend_from_slice(&(chunk as u32).to_be_bytes());
    k
}

/// Takes a snapshot of a dump folder.
pub fn snapshot_dir(repo: &mut Repository, opts: &SnapshotOptions, progress: &dyn Progress) -> Result<SnapshotReport> {
    // Whole seconds, as Kubernetes records times.
    let started = chrono::SubsecRound::trunc_subsecs(timeutil::now(), 0);
    let root = &opts.from_dir;
    if !root.is_dir() {
        return Err(Error::InvalidInput(format!("{} is not a folder", root.display())));
    }
    let files = dir::list_files(root).map_err(|e| Error::Io(format!("cannot read {}", root.display()), e))?;
    let cluster = opts.cluster.clone().unwrap_or_else(|| DEFAULT_CLUSTER.to_owned());
    if cluster.is_empty() {
        return Err(Error::Usage("--cluster must not be empty".into()));
    }
    progress.start("reading", files.len() as u64);

    let key = repo.key().clone();
    let chunking = repo.config().chunking.clone();
    let cache = repo.cache().cloned();
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(1);
    let (tx, rx) = mpsc::sync_channel::<Vec<FileMessage>>(16);

    let mut writer = SnapshotWriter::new();
    let mut errors: Vec<DocError> = Vec::new();
    let mut remember: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut failure: Option<Error> = None;

    std::thread::scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (key, chunking, files, next, cache) = (&key, &chunking, &files, &next, &cache);
            s.spawn(move || loop {
                // Files in batches: one cache transaction and one message per batch.
                let first = next.fetch_add(BATCH, Ordering::Relaxed);
                if first >= files.len() {
                    break;
                }
                let batch: Vec<usize> = (first..(first + BATCH).min(files.len())).collect();
                let read: Vec<std::io::Result<Vec<u8>>> =
                    batch.iter().map(|&i| std::fs::read(root.join(&files[i]))).collect();
                let keys: Vec<Option<[u8; 32]>> = read
                    .iter()
                    .map(|r| r.as_ref().ok().filter(|_| cache.is_some()).map(|b| source_key(key, b)))
                    .collect();
                let known: Vec<[u8; 32]> = keys.iter().flatten().copied().collect();
                let mut remembered = cache.as_ref().map(|c| c.source_files(&known)).unwrap_or_default().into_iter();
                let mut msgs = Vec::with_capacity(batch.len());
                for ((i, bytes), k) in batch.into_iter().zip(read).zip(keys) {
                    let rel = &files[i];
                    let hit = k
                        .and_then(|k| Some((k, remembered.next().flatten()?)))
                        .and_then(|(k, sealed)| key.open(&memo_aad(&k), &sealed).ok())
                        .and_then(|b| serde_json::from_slice::<Vec<Remembered>>(&b).ok());
                    let outcome = match hit {
                        Some(r) => Outcome::Reused(r),
                        None => parse_read(key, chunking, rel, bytes),
                    };
                    msgs.push(FileMessage { file: i, key: k, outcome });
                }
                if tx.send(msgs).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        for msg in rx.iter().flatten() {
            progress.advance(1);
            if failure.is_some() {
                continue; // drain so that workers finish
            }
            let mut outcome = msg.outcome;
            if let Outcome::Reused(objects) = &outcome {
                // Reuse only if every blob is still in the repository; else read the file again.
                let all_there = objects.iter().all(|o| {
                    o.desired
                        .1
                        .iter()
                        .chain(o.server.iter().flat_map(|s| s.1.iter()))
                        .all(|id| writer.has_blob(repo, id))
                });
                if !all_there {
                    let rel = &files[msg.file];
                    outcome = parse_read(&key, &chunking, rel, std::fs::read(root.join(rel)));
                }
            }
            let origin = |doc: usize| ((msg.file as u64) << 32) | doc as u64;
            match outcome {
                Outcome::Reused(objects) => {
                    for o in objects {
                        let entry = o.entry();
                        writer.add_entry(origin(o.doc), o.resource, entry, o.crd);
                    }
                }
                Outcome::Parsed(prepared, errs) => {
                    let clean = errs.is_empty();
                    errors.extend(errs);
                    let mut rows = Vec::with_capacity(prepared.len());
                    for p in prepared {
                        let (doc, crd, resource) = (p.doc, p.crd.clone(), p.resource.clone());
                        match writer.add_prepared(repo, origin(doc), p, None) {
                            Ok(e) => rows.push(Remembered {
                                resource,
                                doc,
                                owned: e.owned,
                                desired: (e.desired.size, e.desired.blobs.to_vec()),
                                server: e.server.as_ref().map(|s| (s.size, s.blobs.to_vec())),
                                crd,
                            }),
                            Err(e) => {
                                failure = Some(e);
                                break;
                            }
                        }
                    }
                    if let (true, Some(k)) = (clean, msg.key) {
                        if let Ok(v) = serde_json::to_vec(&rows) {
                            remember.push((k.to_vec(), repo.key().seal(&memo_aad(&k), &v)));
                        }
                    }
                }
            }
        }
    });
    progress.finish();
    if let Some(e) = failure {
        return Err(e);
    }
    let skipped_documents = errors.len() as u64;
    if !errors.is_empty() {
        errors.sort_by(|a, b| (&a.file, a.doc).cmp(&(&b.file, b.doc)));
        if !opts.skip_invalid {
            let more = if errors.len() > 1 {
                format!(" (and {} more; --skip-invalid skips them)", errors.len() - 1)
            } else {
                " (--skip-invalid skips such documents)".to_owned()
            };
            return Err(Error::InvalidInput(format!("{}{more}", errors[0])));
        }
        for e in &errors {
            progress.warn(&format!("skipped {e}"));
        }
        progress.warn(&format!("skipped {} invalid document(s)", errors.len()));
    }
    let meta = SnapshotMeta {
        cluster,
        tags: opts.tags.clone(),
        time: opts.time.unwrap_or(started),
        source: Source { kind: "dir".into(), name: root.display().to_string() },
        ..Default::default()
    };
    let origin_name = |o: u64| format!("{} (document {})", files[(o >> 32) as usize].display(), o & 0xffff_ffff);
    let mut report = writer.commit(repo, meta, &origin_name)?;
    report.skipped_documents = skipped_documents;
    // Only after the commit: what the cache remembers then points at committed blobs.
    if let Some(c) = repo.cache() {
        c.remember_source_files(&remember);
    }
    Ok(report)
}

/// Reorders `items` so that position k holds what was at `order[k]`, moving each item once.
fn permute<T>(items: &mut [T], mut order: Vec<u32>) {
    for start in 0..items.len() {
        // Follow the cycle through `start`; a visited position is marked by pointing at itself.
        let mut cur = start;
        while order[cur] as usize != start {
            let next = order[cur] as usize;
            if next == cur {
                break;
            }
            items.swap(cur, next);
            order[cur] = cur as u32;
            cur = next;
        }
        order[cur] = cur as u32;
    }
}

/// Source tags are keyed hashes already: the reuse map uses them as they are.
#[derive(Default)]
pub struct TagHasher(u64);

impl std::hash::Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// What a snapshot is, besides its resources.
#[derive(Clone, Debug, Default)]
pub struct SnapshotMeta {
    pub cluster: String,
    pub tags: Vec<String>,
    pub time: DateTime<Utc>,
    pub source: Source,
    /// Types that could not be captured (completely), and why.
    pub skipped: Vec<SkippedType>,
    /// The snapshot is known to be incomplete.
    pub partial: bool,
    /// Types known from a live cluster's discovery (added to the CRD-derived ones).
    pub discovery: Vec<TypeInfo>,
    pub source_info: serde_json::Map<String, serde_json::Value>,
}

/// Builds one snapshot from objects of any source: stores the blobs the repository lacks as
/// objects arrive (bodies are not kept), and keeps per-object metadata until [`commit`].
///
/// [`commit`]: SnapshotWriter::commit
pub struct SnapshotWriter {
    data: Packer,
    /// The source variant for source tags (None: objects get no tag, as from dump folders).
    tag_variant: Option<String>,
    /// The previous snapshot's entries by source tag: objects whose tag is unchanged are
    /// reused without being canonicalised, hashed or looked up again.
    reuse: std::collections::HashMap<u64, ResourceEntry, std::hash::BuildHasherDefault<TagHasher>>,
    /// The snapshot `reuse` was loaded from, and which staged objects were reused from it
    /// (parallel to `staged`): the counts against it then need no tree diff.
    reuse_parent: Option<crate::format::snapshot::Roots>,
    reused: Vec<bool>,
    /// (resource, entry, origin): origin is the caller's number for where the object came from,
    /// named in errors (two objects with one identity).
    staged: Vec<(ResourceRef, ResourceEntry)>,
    /// Where each staged object came from (parallel to `staged`).
    origins: Vec<u64>,
    types: Vec<TypeInfo>,
    /// The state (sequence number) this writer first relied on: blobs found stored from then
    /// on are reused, and a prune after it is checked for before committing.
    base: Option<u64>,
}

impl Default for SnapshotWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotWriter {
    pub fn new() -> SnapshotWriter {
        SnapshotWriter {
            data: Packer::new(PackKind::Data),
            tag_variant: None,
            reuse: Default::default(),
            reuse_parent: None,
            reused: Vec::new(),
            staged: Vec::new(),
            origins: Vec::new(),
            types: Vec::new(),
            base: None,
        }
    }

    /// Gives objects with a uid and a resourceVersion a source tag under `variant` (what
    /// produced them and how, e.g. `cluster` or `cluster redact-secrets`): a later snapshot of the
    /// same variant reuses their entries while the tag is unchanged. For sources that serve
    /// objects exactly as the API server stores them; never for dump folders, whose tools may
    /// rewrite an object without changing its resourceVersion.
    pub fn with_source_tags(mut self, variant: &str) -> SnapshotWriter {
        self.tag_variant = Some(variant.to_owned());
        self
    }

    /// Loads the source tags of a previous snapshot (of the same cluster) for reuse.
    pub fn reuse_unchanged_from(&mut self, repo: &Repository, parent: &crate::format::snapshot::Roots) -> Result<()> {
        self.base.get_or_insert(repo.state().seq);
        // The namespaces are split among the cores: reading a million entries is decompressing,
        // decoding and hashing, and independent per namespace.
        let mut parts: Vec<crate::format::snapshot::Roots> =
            vec![crate::format::snapshot::Roots { cluster: parent.cluster, namespaces: None }];
        if let Some(n) = &parent.namespaces {
            for (_, v) in tree::level_entries(repo, n, crate::format::tree::Level::Namespaces)? {
                if let crate::format::tree::Value::Subtree { id, .. } = v {
                    // A namespace's subtree is a Groups level, like the cluster-scoped root.
                    parts.push(crate::format::snapshot::Roots { cluster: Some(id), namespaces: None });
                }
            }
        }
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8);
        let chunk = parts.len().div_ceil(threads).max(1);
        let maps: Vec<Result<Vec<(u64, ResourceEntry)>>> = std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .chunks(chunk)
                .map(|group| {
                    s.spawn(move || {
                        let mut out = Vec::new();
                        for roots in group {
                            tree::walk_entries(repo, roots, &mut |e| {
                                if let Some(t) = e.source_tag {
                                    out.push((u64::from_le_bytes(t), e.clone()));
                                }
                            })?;
                        }
                        Ok(out)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::Commit("a reading thread failed".into()))))
                .collect()
        });
        // Sized once: a million inserts into a growing map rehash it again and again.
        self.reuse.reserve(maps.iter().map(|m| m.as_ref().map_or(0, Vec::len)).sum::<usize>());
        for m in maps {
            self.reuse.extend(m?);
        }
        self.reuse_parent = Some(parent.clone());
        self.staged.reserve(self.reuse.len());
        self.origins.reserve(self.reuse.len());
        self.reused.reserve(self.reuse.len());
        Ok(())
    }

    /// Drops every object staged from `origin` (a source that restarts a list it had begun).
    /// Blobs already stored for them stay, unreferenced, until a prune. Returns how many were
    /// dropped.
    pub fn discard_origin(&mut self, origin: u64) -> usize {
        let before = self.staged.len();
        let keep: Vec<bool> = self.origins.iter().map(|o| *o != origin).collect();
        let mut i = 0;
        self.staged.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        let mut i = 0;
        self.reused.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        self.origins.retain(|o| *o != origin);
        before - self.staged.len()
    }

    /// Objects staged so far.
    pub fn len(&self) -> usize {
        self.staged.len()
    }

    pub fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }

    /// Whether a blob is stored, or queued by this writer.
    pub fn has_blob(&self, repo: &Repository, id: &BlobId) -> bool {
        self.data.contains(id) || matches!(repo.locate(id), Ok(Some(_)))
    }

    /// Adds one object as read from a source. `Ok(Err(reason))` when it is not a named
    /// Kubernetes object (nothing is stored then).
    pub fn add_value(
        &mut self,
        repo: &Repository,
        origin: u64,
        value: serde_json::Value,
    ) -> Result<std::result::Result<(), String>> {
        self.base.get_or_insert(repo.state().seq);
        let tagged = self.tag_variant.as_deref().and_then(|v| source_tag_of(repo.key(), v, &value));
        let tag = tagged.as_ref().map(|(_, t)| *t);
        if let Some((resource, tag)) = tagged {
            // The entry comes from a committed snapshot of this repository, whose blobs are
            // stored: it is reused as it is, without reading or looking up anything.
            if let Some(entry) = self.reuse.get(&u64::from_le_bytes(tag)).cloned() {
                let crd = if is_crd(&resource) { crd_type(&value) } else { None };
                self.add_entry(origin, resource, entry, crd);
                if let Some(last) = self.reused.last_mut() {
                    *last = true;
                }
                return Ok(Ok(()));
            }
        }
        let chunking = repo.config().chunking.clone();
        match prepare(repo.key(), &chunking, 0, value) {
            Ok(p) => self.add_prepared(repo, origin, p, tag).map(|_| Ok(())),
            Err(reason) => Ok(Err(reason)),
        }
    }

    fn add_prepared(
        &mut self,
        repo: &Repository,
        origin: u64,
        p: Prepared,
        source_tag: Option<[u8; 8]>,
    ) -> Result<ResourceEntry> {
        let data = &mut self.data;
        let mut store = |part: PreparedPart, which: u8| -> Result<PartRef> {
            let mut ids = smallvec::SmallVec::with_capacity(part.blobs.len());
            for (i, (id, t, bytes)) in part.blobs.into_iter().enumerate() {
                if !data.contains(&id) && repo.locate(&id)?.is_none() {
                    data.add(repo, id, t, bytes, sort_key(&p.resource, t, which, i))?;
                }
                ids.push(id);
            }
            Ok(PartRef { size: part.size, blobs: ids })
        };
        let desired = store(p.desired, 1)?;
        let server = p.server.map(|s| store(s, 2)).transpose()?;
        let entry = ResourceEntry { owned: p.owned, source_tag, desired, server };
        self.add_entry(origin, p.resource, entry.clone(), p.crd);
        Ok(entry)
    }

    /// Adds an object whose blobs are known to be stored.
    fn add_entry(&mut self, origin: u64, resource: ResourceRef, entry: ResourceEntry, crd: Option<TypeInfo>) {
        if let Some(t) = crd {
            self.types.push(t);
        }
        self.staged.push((resource, entry));
        self.origins.push(origin);
        self.reused.push(false);
    }

    /// Writes the tree, packs, index file and manifest, then commits the snapshot. Two objects
    /// with one identity fail it, naming both origins.
    pub fn commit(
        self,
        repo: &mut Repository,
        meta: SnapshotMeta,
        origin_name: &dyn Fn(u64) -> String,
    ) -> Result<SnapshotReport> {
        let base = self.base.unwrap_or(repo.state().seq);
        let SnapshotWriter { mut data, mut staged, origins, mut types, reused, reuse_parent, .. } = self;
        if meta.cluster.is_empty() {
            return Err(Error::Usage("the cluster name must not be empty".into()));
        }
        // Sort an index, then move each entry once: entries are large, and a million of them
        // moved at every step of a sort costs more than the comparisons.
        // The first 32 bytes of each sort key, as numbers, settle most comparisons without
        // touching the strings.
        let prefixes: Vec<(u128, u128)> = staged.iter().map(|(r, _)| tree::tree_order_prefix(r)).collect();
        let mut order: Vec<u32> = (0..staged.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            prefixes[a]
                .cmp(&prefixes[b])
                .then_with(|| tree::tree_order(&staged[a].0, &staged[b].0))
                .then(origins[a].cmp(&origins[b]))
        });
        drop(prefixes);
        let origins: Vec<u64> = order.iter().map(|&i| origins[i as usize]).collect();
        let reused: Vec<bool> = order.iter().map(|&i| reused[i as usize]).collect();
        permute(&mut staged, order);
        if let Some(i) = staged.windows(2).position(|w| w[0].0 == w[1].0) {
            let w = &staged[i..i + 2];
            return Err(Error::InvalidInput(format!(
                "{} is defined twice: {} and {}",
                w[0].0.display(),
                origin_name(origins[i]),
                origin_name(origins[i + 1])
            )));
        }
        let entries = staged;
        let objects = entries.len() as u64;
        let desired_bytes = entries.iter().map(|(_, e)| e.desired.size).sum();
        let server_bytes = entries.iter().map(|(_, e)| e.server.as_ref().map_or(0, |s| s.size)).sum();
        // Counts against the previous snapshot of the same cluster. When this writer reused
        // entries from that very snapshot, reused objects are unchanged and only the others are
        // looked up; otherwise the two trees are diffed after writing.
        let parent = super::select::of_cluster(repo, Some(&meta.cluster)).into_iter().next_back();
        let parent_manifest = parent.as_ref().map(|p| repo.load_manifest(&p.id)).transpose()?;
        let mut counts = Counts::default();
        let mut counted = false;
        if let (Some(pm), Some(rp)) = (&parent_manifest, &reuse_parent) {
            if pm.roots == *rp {
                let mut existed = 0u64;
                for ((r, e), was_reused) in entries.iter().zip(&reused) {
                    if *was_reused {
                        existed += 1;
                        continue;
                    }
                    match tree::lookup_resource(repo, &pm.roots, r)? {
                        Some(old) => {
                            existed += 1;
                            if old.desired != e.desired {
                                counts.modified += 1;
                            }
                        }
                        None => counts.added += 1,
                    }
                }
                counts.removed = pm.objects.saturating_sub(existed);
                counted = true;
            }
        }
        data.flush(repo)?;
        let (roots, tree_packer) = {
            let mut tw = TreeWriter::new(repo);
            let roots = tw.write_snapshot(entries)?;
            tw.packer.flush(repo)?;
            (roots, tw.packer)
        };
        let mut locations = data.written;
        locations.extend(tree_packer.written);
        let own_packs: std::collections::HashSet<crate::format::PackId> =
            locations.frames().iter().map(|f| f.pack).collect();
        let own_blobs: std::collections::HashSet<BlobId> = locations.blob_ids().collect();
        let mut bytes_added = data.bytes_written + tree_packer.bytes_written;
        let mut change = LogChange::default();
        if !locations.is_empty() {
            let (id, len) = index::write_index(repo, locations)?;
            bytes_added += len;
            change.add_index.push(id);
            repo.index().add_pending(id);
        }

        if !counted {
            match &parent_manifest {
                Some(pm) => {
                    for c in tree::diff_snapshots(repo, &pm.roots, &roots, &tree::same_desired)? {
                        match (&c.old, &c.new) {
                            (None, Some(_)) => counts.added += 1,
                            (Some(_), None) => counts.removed += 1,
                            _ => counts.modified += 1,
                        }
                    }
                }
                None => counts.added = objects,
            }
        }
        types.extend(meta.discovery.iter().cloned());
        types.sort_by(|a, b| (&a.group, &a.kind, &a.source).cmp(&(&b.group, &b.kind, &b.source)));
        types.dedup_by(|a, b| a.group == b.group && a.kind == b.kind);
        let mut manifest = SnapshotManifest {
            version: 1,
            time: timeutil::format(&meta.time),
            cluster: meta.cluster.clone(),
            tags: meta.tags.clone(),
            hostname: crate::repo::hostname(),
            program: format!("kubesnap {}", env!("CARGO_PKG_VERSION")),
            source: meta.source,
            roots: roots.clone(),
            objects,
            desired_bytes,
            server_bytes,
            parent: parent.as_ref().map(|p| p.id),
            counts,
            types,
            skipped: meta.skipped,
            partial: meta.partial,
            source_info: meta.source_info,
        };
        // The manifest records what the snapshot added in packs and index files; the report adds
        // the manifest's own stored size.
        manifest.counts.bytes_added = bytes_added;
        let (id, manifest_len) = repo.write_manifest(&manifest)?;
        bytes_added += manifest_len;
        change.add_snapshots.push(SnapshotSummary {
            id,
            time: manifest.time.clone(),
            cluster: meta.cluster.clone(),
            tags: meta.tags.clone(),
            objects,
            partial: meta.partial,
        });
        let own_index = change.add_index.first().copied();
        let mut checked_through = base;
        repo.commit_checked(change, &mut |repo: &Repository| {
            check_against_removals(repo, base, &mut checked_through, &id, own_index, &own_packs, &own_blobs, &roots)
        })?;
        // Best effort: a failed merge leaves more index files, never a wrong state.
        if let Err(e) = compact_index(repo) {
            eprintln!("warning: could not merge index files: {e}");
        }
        Ok(SnapshotReport {
            id,
            time: manifest.time,
            cluster: meta.cluster,
            objects,
            added: manifest.counts.added,
            modified: manifest.counts.modified,
            removed: manifest.counts.removed,
            bytes_added,
            skipped_documents: 0,
            parent: manifest.parent,
        })
    }
}

/// A snapshot's commit-time check (`format-spec/10-writers-and-prune.md`): none of its uploads
/// was removed after its base, and, when a prune ran since, every blob it reuses is still
/// listed at the log's head. `checked_through` remembers the last sequence number whose prune
/// was already checked for, so a retried commit does not walk the snapshot again for nothing.
#[allow(clippy::too_many_arguments)]
fn check_against_removals(
    repo: &Repository,
    base: u64,
    checked_through: &mut u64,
    manifest: &SnapshotId,
    own_index: Option<crate::format::IndexId>,
    own_packs: &std::collections::HashSet<crate::format::PackId>,
    own_blobs: &std::collections::HashSet<BlobId>,
    roots: &crate::format::snapshot::Roots,
) -> Result<()> {
    let mut new_prune = false;
    for r in repo.state().removals_after(base) {
        let own_removed = r.snapshots.contains(manifest)
            || own_index.is_some_and(|i| r.index.contains(&i))
            || r.packs.iter().any(|p| own_packs.contains(p));
        if own_removed {
            return Err(Error::Commit(format!(
                "a prune (log entry {}) removed files this snapshot uploaded, as leftovers older than its --leftover-age; nothing was committed: run the snapshot again",
                r.seq
            )));
        }
        if !r.packs.is_empty() && r.seq > *checked_through {
            new_prune = true;
        }
    }
    if !new_prune {
        return Ok(());
    }
    *checked_through = repo.state().seq;
    let mut reused = Vec::new();
    let walked = tree::walk_entries(repo, roots, &mut |e| {
        for part in std::iter::once(&e.desired).chain(e.server.as_ref()) {
            reused.extend(part.blobs.iter().filter(|b| !own_blobs.contains(b)).copied());
        }
    });
    let gone = || {
        Error::Commit(
            "a concurrent prune removed data this snapshot reuses; nothing was committed: run the snapshot again"
                .into(),
        )
    };
    if walked.is_err() {
        return Err(gone());
    }
    reused.sort_unstable();
    reused.dedup();
    for b in reused {
        if repo.locate(&b)?.is_none() {
            return Err(gone());
        }
    }
    Ok(())
}

/// Merges the live index files when there are too many, commits the merge, then deletes the
/// files it superseded (they only repeat what the merged file holds; a reader that loaded the
/// old list and misses one re-reads the log).
pub fn compact_index(repo: &mut Repository) -> Result<()> {
    let live = repo.state().index.clone();
    if live.len() <= index::MAX_LIVE_INDEX_FILES {
        return Ok(());
    }
    let sizes = live.iter().map(|id| Ok((*id, index::file_size(repo, id)?))).collect::<Result<Vec<_>>>()?;
    let Some(merge) = index::compaction_plan(&sizes) else { return Ok(()) };
    let base = repo.state().seq;
    let merged = index::merge_files(repo, &merge)?;
    // A merge copies entries: after a prune it could list packs that prune removed.
    repo.commit_checked(
        LogChange { add_index: vec![merged], remove_index: merge.clone(), ..Default::default() },
        &mut |repo: &Repository| {
            if repo.state().removals_after(base).any(|r| !r.packs.is_empty() || r.index.contains(&merged)) {
                return Err(Error::Commit("a prune ran meanwhile; the index files were not merged".into()));
            }
            Ok(())
        },
    )?;
    // Best effort: a writer without delete rights leaves them, and prune removes them later as
    // index files no entry keeps live.
    for id in &merge {
        if *id != merged {
            let _ = repo.backend().delete(&crate::repo::index_name(id));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::permute;

    #[test]
    fn permute_moves_each_item_to_its_place() {
        let mut seed = 7u64;
        for n in [0usize, 1, 2, 3, 10, 257] {
            let mut order: Vec<u32> = (0..n as u32).collect();
            for i in (1..n).rev() {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                order.swap(i, (seed >> 33) as usize % (i + 1));
            }
            let items: Vec<u32> = (0..n as u32).map(|i| i * 10).collect();
            let want: Vec<u32> = order.iter().map(|&i| items[i as usize]).collect();
            let mut got = items.clone();
            permute(&mut got, order);
            assert_eq!(got, want, "n = {n}");
        }
    }
}

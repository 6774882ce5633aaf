//! `kubesnap snapshot`: store the objects of a source as a new snapshot.
//!
//! Files are parsed on every core; each object is split into desired state and server-owned
//! fields, canonicalised, hashed, and (when large) chunked by the workers. The main thread only
//! checks identities, asks the index whether each blob is new, and feeds new blobs to the
//! packer. Nothing becomes visible until the final commit-log entry: an invalid document, a
//! duplicate identity or a crash before it leaves the repository's snapshots as they were.

use std::collections::HashMap;
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
use crate::format::snapshot::{Counts, SnapshotManifest, Source, TypeInfo};
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
        let part = |(size, blobs): &(u64, Vec<BlobId>)| PartRef { size: *size, blobs: blobs.clone() };
        ResourceEntry { owned: self.owned, desired: part(&self.desired), server: self.server.as_ref().map(part) }
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

fn crd_type(value: &serde_json::Value) -> Option<TypeInfo> {
    let t = TypeTable::type_from_crd(value)?;
    Some(TypeInfo {
        group: t.group,
        version: t.version,
        kind: t.kind,
        plural: t.plural,
        singular: t.singular,
        short_names: t.short_names,
        namespaced: t.namespaced,
        categories: t.categories,
        source: "crd".into(),
    })
}

fn prepare(
    key: &MasterKey,
    chunking: &Chunking,
    doc: usize,
    value: serde_json::Value,
) -> std::result::Result<Prepared, String> {
    let resource = identity_of(&value).map_err(|e| e.to_string())?;
    let owned = is_controller_owned(&value);
    let crd = if resource.group == "apiextensions.k8s.io" && resource.kind == "CustomResourceDefinition" {
        crd_type(&value)
    } else {
        None
    };
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

    let mut data = Packer::new(PackKind::Data);
    let mut entries: Vec<(ResourceRef, ResourceEntry)> = Vec::new();
    let mut seen: HashMap<ResourceRef, (usize, usize)> = HashMap::new();
    let mut errors: Vec<DocError> = Vec::new();
    let mut types: Vec<TypeInfo> = Vec::new();
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
                    let outcome = match (bytes, hit) {
                        (_, Some(r)) => Outcome::Reused(r),
                        (Ok(bytes), None) => parse_prepared(key, chunking, rel, bytes),
                        (Err(e), None) => Outcome::Parsed(
                            Vec::new(),
                            vec![DocError {
                                file: rel.display().to_string(),
                                doc: 0,
                                line: 0,
                                message: format!("cannot read: {e}"),
                            }],
                        ),
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
                        .all(|id| data.contains(id) || matches!(repo.locate(id), Ok(Some(_))))
                });
                if !all_there {
                    let rel = &files[msg.file];
                    outcome = match std::fs::read(root.join(rel)) {
                        Ok(bytes) => parse_prepared(&key, &chunking, rel, bytes),
                        Err(e) => Outcome::Parsed(
                            Vec::new(),
                            vec![DocError {
                                file: rel.display().to_string(),
                                doc: 0,
                                line: 0,
                                message: format!("cannot read: {e}"),
                            }],
                        ),
                    };
                }
            }
            let mut check_duplicate = |r: &ResourceRef, doc: usize| -> bool {
                if let Some((f, d)) = seen.get(r) {
                    failure = Some(Error::InvalidInput(format!(
                        "{} is defined twice: {} (document {}) and {} (document {})",
                        r.display(),
                        files[*f].display(),
                        d,
                        files[msg.file].display(),
                        doc
                    )));
                    return true;
                }
                seen.insert(r.clone(), (msg.file, doc));
                false
            };
            match outcome {
                Outcome::Reused(objects) => {
                    for o in objects {
                        if check_duplicate(&o.resource, o.doc) {
                            break;
                        }
                        if let Some(t) = &o.crd {
                            types.push(t.clone());
                        }
                        entries.push((o.resource.clone(), o.entry()));
                    }
                }
                Outcome::Parsed(prepared, errs) => {
                    let clean = errs.is_empty();
                    errors.extend(errs);
                    let mut rows = Vec::with_capacity(prepared.len());
                    for p in prepared {
                        if check_duplicate(&p.resource, p.doc) {
                            break;
                        }
                        if let Some(t) = &p.crd {
                            types.push(t.clone());
                        }
                        let (doc, crd) = (p.doc, p.crd.clone());
                        match store_object(repo, &mut data, p) {
                            Ok((r, e)) => {
                                rows.push(Remembered {
                                    resource: r.clone(),
                                    doc,
                                    owned: e.owned,
                                    desired: (e.desired.size, e.desired.blobs.clone()),
                                    server: e.server.as_ref().map(|s| (s.size, s.blobs.clone())),
                                    crd,
                                });
                                entries.push((r, e));
                            }
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
    let time = opts.time.unwrap_or(started);
    let source = Source { kind: "dir".into(), name: root.display().to_string() };
    let report = commit_snapshot(repo, data, entries, types, &cluster, &opts.tags, time, source, skipped_documents)?;
    // Only after the commit: what the cache remembers then points at committed blobs.
    if let Some(c) = repo.cache() {
        c.remember_source_files(&remember);
    }
    Ok(report)
}

/// Stores the blobs of one prepared object that the repository does not have yet.
fn store_object(repo: &Repository, data: &mut Packer, p: Prepared) -> Result<(ResourceRef, ResourceEntry)> {
    let mut store = |part: PreparedPart, which: u8| -> Result<PartRef> {
        let mut ids = Vec::with_capacity(part.blobs.len());
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
    Ok((p.resource, ResourceEntry { owned: p.owned, desired, server }))
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
    let merged = index::merge_files(repo, &merge)?;
    repo.commit(LogChange { add_index: vec![merged], remove_index: merge.clone(), ..Default::default() })?;
    for id in &merge {
        if *id != merged {
            repo.backend().delete(&crate::repo::index_name(id))?;
        }
    }
    Ok(())
}

/// Writes the tree, packs, index file and manifest of a snapshot, then commits it.
#[allow(clippy::too_many_arguments)] // one call site per source; a struct would only rename them
pub fn commit_snapshot(
    repo: &mut Repository,
    mut data: Packer,
    entries: Vec<(ResourceRef, ResourceEntry)>,
    mut types: Vec<TypeInfo>,
    cluster: &str,
    tags: &[String],
    time: DateTime<Utc>,
    source: Source,
    _skipped_documents: u64,
) -> Result<SnapshotReport> {
    let objects = entries.len() as u64;
    let desired_bytes = entries.iter().map(|(_, e)| e.desired.size).sum();
    let server_bytes = entries.iter().map(|(_, e)| e.server.as_ref().map_or(0, |s| s.size)).sum();
    data.flush(repo)?;
    let (roots, tree_packer) = {
        let mut tw = TreeWriter::new(repo);
        let roots = tw.write_snapshot(entries)?;
        tw.packer.flush(repo)?;
        (roots, tw.packer)
    };
    let mut locations = data.written;
    locations.extend(tree_packer.written);
    let mut bytes_added = data.bytes_written + tree_packer.bytes_written;
    let mut change = LogChange::default();
    if !locations.is_empty() {
        let (id, len) = index::write_index(repo, locations)?;
        bytes_added += len;
        change.add_index.push(id);
        repo.index().add_pending(id);
    }

    // Counts against the previous snapshot of the same cluster.
    let parent = super::select::of_cluster(repo, Some(cluster)).into_iter().next_back();
    let mut counts = Counts::default();
    if let Some(p) = &parent {
        let pm = repo.load_manifest(&p.id)?;
        for c in tree::diff_snapshots(repo, &pm.roots, &roots, &tree::same_desired)? {
            match (&c.old, &c.new) {
                (None, Some(_)) => counts.added += 1,
                (Some(_), None) => counts.removed += 1,
                _ => counts.modified += 1,
            }
        }
    } else {
        counts.added = objects;
    }
    types.sort_by(|a, b| (&a.group, &a.kind).cmp(&(&b.group, &b.kind)));
    types.dedup_by(|a, b| a.group == b.group && a.kind == b.kind);
    let mut manifest = SnapshotManifest {
        version: 1,
        time: timeutil::format(&time),
        cluster: cluster.to_owned(),
        tags: tags.to_vec(),
        hostname: crate::repo::hostname(),
        program: format!("kubesnap {}", env!("CARGO_PKG_VERSION")),
        source,
        roots,
        objects,
        desired_bytes,
        server_bytes,
        parent: parent.as_ref().map(|p| p.id),
        counts,
        types,
        skipped: Vec::new(),
        partial: false,
        source_info: Default::default(),
    };
    // The manifest records what the snapshot added in packs and index files; the report adds
    // the manifest's own stored size.
    manifest.counts.bytes_added = bytes_added;
    let (id, manifest_len) = repo.write_manifest(&manifest)?;
    bytes_added += manifest_len;
    change.add_snapshots.push(SnapshotSummary {
        id,
        time: manifest.time.clone(),
        cluster: cluster.to_owned(),
        tags: tags.to_vec(),
        objects,
        partial: false,
    });
    repo.commit(change)?;
    // Best effort: a failed merge leaves more index files, never a wrong state.
    if let Err(e) = compact_index(repo) {
        eprintln!("warning: could not merge index files: {e}");
    }
    Ok(SnapshotReport {
        id,
        time: manifest.time,
        cluster: cluster.to_owned(),
        objects,
        added: manifest.counts.added,
        modified: manifest.counts.modified,
        removed: manifest.counts.removed,
        bytes_added,
        skipped_documents: _skipped_documents,
        parent: manifest.parent,
    })
}

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
    file: usize,
    doc: usize,
    owned: bool,
    desired: PreparedPart,
    server: Option<PreparedPart>,
    crd: Option<TypeInfo>,
}

enum Message {
    Object(Box<Prepared>),
    Errors(Vec<DocError>),
    FileDone,
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
    file: usize,
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
    Ok(Prepared { resource, file, doc, owned, desired, server, crd })
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
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(1);
    let (tx, rx) = mpsc::sync_channel::<Message>(4096);

    let mut data = Packer::new(PackKind::Data);
    let mut entries: Vec<(ResourceRef, ResourceEntry)> = Vec::new();
    let mut seen: HashMap<ResourceRef, (usize, usize)> = HashMap::new();
    let mut errors: Vec<DocError> = Vec::new();
    let mut types: Vec<TypeInfo> = Vec::new();
    let mut failure: Option<Error> = None;

    std::thread::scope(|s| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (key, chunking, files, next) = (&key, &chunking, &files, &next);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(rel) = files.get(i) else { break };
                let (objects, mut errs) = dir::parse_file(root, rel);
                for o in objects {
                    match prepare(key, chunking, i, o.doc, o.value) {
                        Ok(p) => {
                            if tx.send(Message::Object(Box::new(p))).is_err() {
                                return;
                            }
                        }
                        Err(m) => {
                            errs.push(DocError { file: rel.display().to_string(), doc: o.doc, line: 0, message: m })
                        }
                    }
                }
                if !errs.is_empty() && tx.send(Message::Errors(errs)).is_err() {
                    return;
                }
                if tx.send(Message::FileDone).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        for msg in rx.iter() {
            if failure.is_some() {
                continue; // drain so that workers finish
            }
            match msg {
                Message::FileDone => progress.advance(1),
                Message::Errors(e) => errors.extend(e),
                Message::Object(p) => {
                    if let Some((f, d)) = seen.get(&p.resource) {
                        failure = Some(Error::InvalidInput(format!(
                            "{} is defined twice: {} (document {}) and {} (document {})",
                            p.resource.display(),
                            files[*f].display(),
                            d,
                            files[p.file].display(),
                            p.doc
                        )));
                        continue;
                    }
                    seen.insert(p.resource.clone(), (p.file, p.doc));
                    if let Some(t) = &p.crd {
                        types.push(t.clone());
                    }
                    match store_object(repo, &mut data, *p) {
                        Ok(e) => entries.push(e),
                        Err(e) => failure = Some(e),
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
    commit_snapshot(repo, data, entries, types, &cluster, &opts.tags, time, source, skipped_documents)
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
        let mut live = repo.state().index.clone();
        live.push(id);
        repo.index_mut().set_files(&live);
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
    let manifest_len = manifest.encode().len() as u64 + 72;
    bytes_added += manifest_len;
    manifest.counts.bytes_added = bytes_added;
    let id = repo.write_manifest(&manifest)?;
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

//! `kubesnap prune`: removes what no snapshot references, while other processes keep writing.
//!
//! The protocol and its safety argument are `format-spec/10-writers-and-prune.md`. In short:
//! mark every blob the live snapshots reach; sum, per pack, referenced and unreferenced bytes
//! while streaming over the index; write the referenced blobs of mostly unused packs again into
//! new packs; write new index files; commit one entry that
//! removes the old index files and the removed packs; if another process committed first,
//! start again; then delete. Never-committed leftovers are removed only when older than
//! `leftover_age`, judged by the store's own timestamps.
//!
//! Memory: one set of referenced blob ids (16 bytes each), per-pack counters, the locations
//! of the blobs to repack, and the new index's entries; never a copy of every index file.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;

use super::Progress;
use crate::format::pack::PackKind;
use crate::format::{BlobId, IndexId, PackId, SnapshotId};
use crate::repo::index::{self, Locations};
use crate::repo::packer::Packer;
use crate::repo::{index_name, pack_name, snapshot_name, tree, LogChange, Repository};
use crate::{Error, Result};

#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// A pack is repacked when more than this percentage of its stored bytes is unreferenced.
    pub max_unused_percent: f64,
    /// Say what would be done; change nothing.
    pub dry_run: bool,
    /// Files no log entry references are removed once older than this.
    pub leftover_age: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions { max_unused_percent: 10.0, dry_run: false, leftover_age: Duration::from_secs(24 * 3600) }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: usize,
    pub blobs_referenced: u64,
    pub blobs_unreferenced: u64,
    pub packs_before: u64,
    /// Packs with no referenced blob, removed.
    pub packs_removed: u64,
    /// Partly used packs whose referenced blobs were written again into new packs (read,
    /// authenticated, re-framed and re-compressed), then removed.
    pub packs_repacked: u64,
    pub packs_written: u64,
    /// Never-committed leftovers older than the leftover age: packs, index files, manifests.
    pub leftover_packs: u64,
    pub leftover_index_files: u64,
    pub leftover_manifests: u64,
    /// Newer unreferenced files left for a later prune (a writer may still commit them).
    pub young_leftovers: u64,
    pub index_files_before: u64,
    pub index_files_after: u64,
    /// Stored bytes deleted, and written (by repacking and the new index files).
    pub bytes_removed: u64,
    pub bytes_written: u64,
    /// Times the computation started again because another process committed meanwhile.
    pub restarts: u32,
}

/// How many times prune starts again after losing a race before giving up.
const MAX_ROUNDS: u32 = 8;

struct PackUse {
    kind: PackKind,
    used: u64,
    unused: u64,
}

pub fn prune(repo: &mut Repository, opts: &PruneOptions, progress: &dyn Progress) -> Result<PruneReport> {
    let mut restarts = 0;
    loop {
        // An index file merged away by a concurrent writer is a race like a lost commit.
        let round = match prune_round(repo, opts, progress) {
            Err(Error::Vanished(_)) => Ok(None),
            other => other,
        };
        match round? {
            Some(mut r) => {
                r.restarts = restarts;
                return Ok(r);
            }
            None if restarts + 1 >= MAX_ROUNDS => {
                return Err(Error::Commit(format!(
                    "other processes committed during each of {MAX_ROUNDS} attempts; run prune again when the repository is quieter"
                )))
            }
            None => restarts += 1,
        }
    }
}

/// One attempt; `None` when another process committed first.
fn prune_round(repo: &mut Repository, opts: &PruneOptions, progress: &dyn Progress) -> Result<Option<PruneReport>> {
    repo.refresh()?;
    let base = repo.state().seq;
    let snapshots = repo.state().snapshots.clone();
    let live_index = repo.state().index.clone();
    let mut report = PruneReport {
        dry_run: opts.dry_run,
        snapshots: snapshots.len(),
        index_files_before: live_index.len() as u64,
        ..Default::default()
    };

    // 1. What the live snapshots reach.
    progress.start("marking", snapshots.len() as u64);
    let mut referenced: HashSet<BlobId> = HashSet::new();
    let mut live_manifests: HashSet<SnapshotId> = HashSet::new();
    for s in &snapshots {
        let m = repo.load_manifest(&s.id)?;
        tree::mark_referenced(repo, &m.roots, &mut referenced)?;
        live_manifests.insert(s.id);
        progress.advance(1);
    }
    progress.finish();

    // 2. Per pack, the raw bytes of referenced and of unreferenced blobs, streaming over the
    //    index.
    let mut packs: HashMap<PackId, PackUse> = HashMap::new();
    let mut located: HashSet<BlobId> = HashSet::new();
    let mut index_entries = 0u64;
    repo.index().for_each_entry(repo, |_, id, loc| {
        index_entries += 1;
        let u = packs.entry(loc.frame.pack).or_insert(PackUse { kind: loc.frame.pack_kind, used: 0, unused: 0 });
        // A blob listed twice (two writers uploaded it) is used in its first location only.
        if referenced.contains(id) && located.insert(*id) {
            u.used += u64::from(loc.raw_length);
        } else {
            u.unused += u64::from(loc.raw_length);
        }
        Ok(())
    })?;
    report.blobs_referenced = located.len() as u64;
    drop(located);

    // 3. The store's files: sizes, and leftovers no live index or snapshot names.
    let now = chrono::Utc::now();
    let age = chrono::Duration::from_std(opts.leftover_age).unwrap_or(chrono::Duration::MAX);
    let old = |info: &crate::backend::ObjectInfo| info.last_modified.is_none_or(|t| now - t > age);
    let mut sizes: HashMap<PackId, u64> = HashMap::new();
    let mut leftover_packs: Vec<(PackId, PackKind, u64)> = Vec::new();
    for (dir, kind) in [("data/", PackKind::Data), ("tree/", PackKind::Tree)] {
        for info in repo.backend().list(dir, None)? {
            let Some(id) = info.name.rsplit('/').next().and_then(|h| PackId::from_hex(h).ok()) else { continue };
            sizes.insert(id, info.size);
            if !packs.contains_key(&id) {
                if old(&info) {
                    leftover_packs.push((id, kind, info.size));
                } else {
                    report.young_leftovers += 1;
                }
            }
        }
    }
    report.packs_before = sizes.len() as u64;
    let live_index_set: HashSet<IndexId> = live_index.iter().copied().collect();
    let mut leftover_index = Vec::new();
    for info in repo.backend().list("index/", None)? {
        let Some(id) = info.name.strip_prefix("index/").and_then(|h| IndexId::from_hex(h).ok()) else { continue };
        if !live_index_set.contains(&id) {
            if old(&info) {
                leftover_index.push((id, info.size));
            } else {
                report.young_leftovers += 1;
            }
        }
    }
    let mut leftover_manifests = Vec::new();
    for info in repo.backend().list("snapshots/", None)? {
        let Some(id) = info.name.strip_prefix("snapshots/").and_then(|h| SnapshotId::from_hex(h).ok()) else {
            continue;
        };
        if !live_manifests.contains(&id) {
            if old(&info) {
                leftover_manifests.push((id, info.size));
            } else {
                report.young_leftovers += 1;
            }
        }
    }

    // 4. Decide: unused packs go, packs mostly unused are repacked.
    let mut remove: Vec<(PackId, PackKind)> = Vec::new();
    let mut repack: Vec<(PackId, PackKind)> = Vec::new();
    for (id, u) in &packs {
        if u.used == 0 {
            remove.push((*id, u.kind));
        } else if u.unused as f64 * 100.0 > opts.max_unused_percent * (u.used + u.unused) as f64 {
            repack.push((*id, u.kind));
        }
    }
    remove.sort_by_key(|(id, _)| *id);
    repack.sort_by_key(|(id, _)| *id);
    report.packs_removed = remove.len() as u64;
    report.packs_repacked = repack.len() as u64;
    report.leftover_packs = leftover_packs.len() as u64;
    report.leftover_index_files = leftover_index.len() as u64;
    report.leftover_manifests = leftover_manifests.len() as u64;
    let size_of = |id: &PackId| sizes.get(id).copied().unwrap_or(0);
    report.bytes_removed = remove.iter().chain(&repack).map(|(id, _)| size_of(id)).sum::<u64>()
        + leftover_packs.iter().map(|(_, _, s)| s).sum::<u64>()
        + leftover_index.iter().map(|(_, s)| s).sum::<u64>()
        + leftover_manifests.iter().map(|(_, s)| s).sum::<u64>();
    let nothing_to_do = remove.is_empty()
        && repack.is_empty()
        && leftover_packs.is_empty()
        && leftover_index.is_empty()
        && leftover_manifests.is_empty();
    if opts.dry_run || nothing_to_do {
        report.index_files_after = report.index_files_before;
        return Ok(Some(report));
    }

    // 5. Repack: the referenced blobs of the packs to repack are read (authenticated), then
    //    framed, compressed and sealed again, in their old order, into new packs.
    let repack_set: HashSet<PackId> = repack.iter().map(|(id, _)| *id).collect();
    let mut packers: HashMap<PackKind, Packer> = HashMap::new();
    let mut in_kept_pack: HashSet<BlobId> = HashSet::new();
    let removed_now: HashSet<PackId> = remove.iter().map(|(id, _)| *id).chain(repack_set.iter().copied()).collect();
    repo.index().for_each_entry(repo, |_, id, loc| {
        if !removed_now.contains(&loc.frame.pack) && referenced.contains(id) {
            in_kept_pack.insert(*id);
        }
        Ok(())
    })?;
    progress.start("repacking", repack.len() as u64);
    // The blobs to copy, grouped by frame (a frame's location is kept once, not per blob). A
    // blob listed in two repacked packs is stored once: the packer skips ids it has queued.
    type FrameBlobs = (crate::format::index::IndexFrame, Vec<(BlobId, crate::format::pack::BlobType, u32, u32)>);
    let mut to_copy: HashMap<(PackId, u64), FrameBlobs> = HashMap::new();
    repo.index().for_each_entry(repo, |_, id, loc| {
        if repack_set.contains(&loc.frame.pack) && referenced.contains(id) && !in_kept_pack.contains(id) {
            to_copy
                .entry((loc.frame.pack, loc.frame.offset))
                .or_insert_with(|| (loc.frame.clone(), Vec::new()))
                .1
                .push((*id, loc.blob_type, loc.raw_offset, loc.raw_length));
        }
        Ok(())
    })?;
    drop(in_kept_pack);
    let mut frames: Vec<FrameBlobs> = to_copy.into_values().collect();
    frames.sort_by_key(|(f, _)| (f.pack, f.offset));
    let mut last_pack = None;
    let mut n = 0u64;
    for (frame, blobs) in frames.iter_mut() {
        if last_pack != Some(frame.pack) {
            last_pack = Some(frame.pack);
            progress.advance(1);
        }
        blobs.sort_by_key(|b| b.2);
        for (id, blob_type, raw_offset, raw_length) in blobs.drain(..) {
            let loc = crate::format::index::BlobLocation { frame: frame.clone(), blob_type, raw_offset, raw_length };
            let bytes = repo.read_blob_at(&id, &loc)?;
            let kind = frame.pack_kind;
            let packer = packers.entry(kind).or_insert_with(|| Packer::new(kind));
            n += 1;
            packer.add(repo, id, blob_type, bytes, n.to_be_bytes().to_vec())?;
        }
    }
    drop(frames);
    for packer in packers.values_mut() {
        packer.flush(repo)?;
    }
    progress.finish();

    // 6. New index files: every entry of a pack that stays, plus the copied frames' blobs.
    let removed = removed_now;
    // New index files of at most `per_file` entries each, written as the entries stream by (a
    // whole index's entries, sorted and encoded, would be the largest thing prune holds); at
    // most eight, so the live set stays within what writers keep unmerged.
    let per_file = (index_entries / 8 + 1).max(200_000) as usize;
    let mut locs = Locations::default();
    let mut unreferenced = 0u64;
    let mut new_index = Vec::new();
    let mut bytes_written = 0u64;
    repo.index().for_each_entry(repo, |_, id, loc| {
        if !referenced.contains(id) {
            unreferenced += 1;
        }
        if !removed.contains(&loc.frame.pack) {
            locs.push(*id, loc);
            if locs.len() >= per_file {
                let (id, len) = index::write_index(repo, std::mem::take(&mut locs))?;
                new_index.push(id);
                bytes_written += len;
            }
        }
        Ok(())
    })?;
    for (_, packer) in packers {
        report.packs_written += packer.packs_written;
        bytes_written += packer.bytes_written;
        locs.extend(packer.written);
    }
    if !locs.is_empty() {
        let (id, len) = index::write_index(repo, locs)?;
        new_index.push(id);
        bytes_written += len;
    }
    report.blobs_unreferenced = unreferenced;
    report.bytes_written = bytes_written;
    report.index_files_after = new_index.len() as u64;

    // 7. Commit, unless another process committed since `base`: then start again.
    let mut remove_index = live_index.clone();
    remove_index.extend(leftover_index.iter().map(|(id, _)| *id));
    let mut remove_packs: Vec<PackId> = removed.iter().copied().collect();
    remove_packs.extend(leftover_packs.iter().map(|(id, _, _)| *id));
    remove_packs.sort();
    let change = LogChange {
        add_index: new_index.clone(),
        remove_index,
        remove_snapshots: leftover_manifests.iter().map(|(id, _)| *id).collect(),
        remove_packs,
        ..Default::default()
    };
    let committed = repo.commit_checked(change, &mut |repo: &Repository| {
        if repo.state().seq != base {
            return Err(Error::Commit("raced".into()));
        }
        Ok(())
    });
    match committed {
        Ok(_) => {}
        Err(Error::Commit(m)) if m == "raced" => return Ok(None),
        Err(e) => return Err(e),
    }

    // 8. Delete what the entry removed (a failure leaves garbage for the next prune).
    let mut names: Vec<String> = Vec::new();
    names.extend(remove.iter().chain(&repack).map(|(id, kind)| pack_name(*kind, id)));
    names.extend(leftover_packs.iter().map(|(id, kind, _)| pack_name(*kind, id)));
    names.extend(live_index.iter().chain(leftover_index.iter().map(|(id, _)| id)).map(index_name));
    names.extend(leftover_manifests.iter().map(|(id, _)| snapshot_name(id)));
    progress.start("deleting", names.len() as u64);
    for n in names {
        if let Err(e) = repo.backend().delete(&n) {
            progress.warn(&format!("could not delete {n}: {e}; a later prune removes it"));
        }
        progress.advance(1);
    }
    progress.finish();
    Ok(Some(report))
}

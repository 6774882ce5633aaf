//! `kubesnap check [--read-data]`: verify that the repository is sound.
//!
//! Without `--read-data`: the config and key files, the whole commit log (its chain, from
//! entry 1), every live snapshot's manifest and tree, that every blob a snapshot needs is in
//! the index, and that every pack the index names exists and its header agrees with the index.
//! With `--read-data`: also every pack's bytes against its name, every frame's seal and every
//! blob's content against its id. Problems are collected, each naming the damaged object, so
//! one damaged pack does not hide another.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::backend::BackendError;
use crate::format::index::BlobLocation;
use crate::format::pack::{decode_trailer, frame_context, Compression, PackHeader, TRAILER_LEN};
use crate::format::{aad, content_hash, BlobId, FileHeader, FileType, PackId};
use crate::repo::{pack_name, tree, Repository};
use crate::Result;

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Read and verify every byte of every pack.
    pub read_data: bool,
    /// Read and verify every byte of some packs only.
    pub read_data_subset: Option<Subset>,
}

/// Which packs `--read-data-subset` reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subset {
    /// About this percentage of the packs, chosen at random on each run.
    Percent(f64),
    /// Part `k` (1-based) of `n`: the packs whose id, as a number, is `k - 1` modulo `n`.
    /// Running parts 1/n to n/n reads every pack once.
    Part { k: u64, n: u64 },
}

impl Subset {
    /// `10%`, `2.5%` or `K/N`.
    pub fn parse(s: &str) -> Option<Subset> {
        if let Some(p) = s.strip_suffix('%') {
            let v: f64 = p.trim().parse().ok()?;
            return (v > 0.0 && v <= 100.0).then_some(Subset::Percent(v));
        }
        let (k, n) = s.split_once('/')?;
        let (k, n): (u64, u64) = (k.trim().parse().ok()?, n.trim().parse().ok()?);
        (n > 0 && k >= 1 && k <= n).then_some(Subset::Part { k, n })
    }

    fn selects(&self, pack: &PackId, seed: u64) -> bool {
        let mut b = [0u8; 8];
        b.copy_from_slice(&pack.0[..8]);
        let v = u64::from_le_bytes(b);
        match *self {
            Subset::Percent(p) => {
                let x = (v ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
                (x as f64 / (1u64 << 53) as f64) * 100.0 < p
            }
            Subset::Part { k, n } => v % n == k - 1,
        }
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: u64,
    pub index_files: u64,
    pub packs: u64,
    /// Packs read and verified byte by byte.
    pub packs_read: u64,
    pub blobs: u64,
    /// Damage: each names the object.
    pub errors: Vec<String>,
    /// Not damage: leftovers of interrupted writers, which prune removes.
    pub warnings: Vec<String>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

pub fn check(repo: &Repository, opts: &CheckOptions, progress: &dyn super::Progress) -> Result<CheckReport> {
    let mut rep = CheckReport::default();
    let b = repo.backend();

    // Key files: name = content hash.
    for k in b.list("keys/", None)? {
        match b.get(&k.name) {
            Ok(bytes) if hex::encode(content_hash(&bytes)) == k.name.trim_start_matches("keys/") => {}
            Ok(_) => rep.errors.push(format!("key file {} is corrupt: its content does not match its name", k.name)),
            Err(e) => rep.errors.push(format!("key file {}: {e}", k.name)),
        }
    }

    // The whole commit log, from the first entry.
    let log = b.list("log/", None)?;
    let mut prev: Option<String> = None;
    for (i, info) in log.iter().enumerate() {
        let seq = i as u64 + 1;
        if crate::format::log::parse_seq(&info.name) != Some(seq) {
            rep.warnings.push(format!("{}: not part of the commit log (a gap before it)", info.name));
            break;
        }
        match repo.read_sealed_file(&info.name, FileType::LogEntry, &seq.to_le_bytes(), None) {
            Ok((plain, hash)) => match crate::format::log::LogEntry::decode(&plain) {
                Ok(e) if e.seq == seq && e.prev == prev => prev = Some(hex::encode(hash)),
                Ok(_) => rep
                    .errors
                    .push(format!("commit-log entry {} is corrupt: it does not chain to the one before", info.name)),
                Err(e) => rep.errors.push(format!("commit-log entry {} is corrupt: {e}", info.name)),
            },
            Err(e) => rep.errors.push(e.to_string()),
        }
    }

    // Index: every entry, by pack.
    let mut by_pack: HashMap<PackId, Vec<(BlobId, BlobLocation)>> = HashMap::new();
    let mut known: HashSet<BlobId> = HashSet::new();
    rep.index_files = repo.index().ids().len() as u64;
    let r = repo.index().for_each_entry(repo, |_, id, loc| {
        known.insert(*id);
        by_pack.entry(loc.frame.pack).or_default().push((*id, loc.clone()));
        Ok(())
    });
    if let Err(e) = r {
        rep.errors.push(e.to_string());
    }
    rep.blobs = known.len() as u64;

    // Snapshots: manifest, tree, and every referenced blob indexed.
    let snaps = repo.snapshots();
    rep.snapshots = snaps.len() as u64;
    progress.start("checking snapshots", snaps.len() as u64);
    let mut seen_missing: HashSet<BlobId> = HashSet::new();
    for s in &snaps {
        let m = match repo.load_manifest(&s.id) {
            Ok(m) => m,
            Err(e) => {
                rep.errors.push(format!("snapshot {}: {e}", s.id.short()));
                progress.advance(1);
                continue;
            }
        };
        let mut missing = Vec::new();
        let walked = tree::walk_snapshot(repo, &m.roots, &mut |r, e| {
            for id in e.desired.blobs.iter().chain(e.server.iter().flat_map(|p| p.blobs.iter())) {
                if !known.contains(id) && seen_missing.insert(*id) {
                    missing.push(format!(
                        "snapshot {}: blob {} of {} is in no index file",
                        s.id.short(),
                        id.short(),
                        r.display()
                    ));
                }
            }
            Ok(())
        });
        if let Err(e) = walked {
            rep.errors.push(format!("snapshot {}: {e}", s.id.short()));
        }
        rep.errors.extend(missing);
        progress.advance(1);
    }
    progress.finish();

    // Packs: present, header agrees with the index; with --read-data, every byte.
    let mut listed: HashMap<String, u64> = HashMap::new();
    for dir in ["data/", "tree/"] {
        for o in b.list(dir, None)? {
            listed.insert(o.name, o.size);
        }
    }
    let mut referenced: HashSet<String> = HashSet::new();
    let reads_some = opts.read_data || opts.read_data_subset.is_some();
    progress.start(if reads_some { "reading packs" } else { "checking packs" }, by_pack.len() as u64);
    let seed: u64 = rand::random();
    let mut packs: Vec<_> = by_pack.into_iter().collect();
    packs.sort_by_key(|p| p.0);
    for (pack, entries) in packs {
        let kind = entries[0].1.frame.pack_kind;
        let name = pack_name(kind, &pack);
        referenced.insert(name.clone());
        rep.packs += 1;
        if !listed.contains_key(&name) {
            rep.errors.push(format!("pack {} is missing ({} blobs need it)", pack.to_hex(), entries.len()));
            progress.advance(1);
            continue;
        }
        let read = opts.read_data || opts.read_data_subset.is_some_and(|s| s.selects(&pack, seed));
        if read {
            rep.packs_read += 1;
        }
        if let Err(msg) = check_pack(repo, &pack, &name, &entries, read) {
            rep.errors.push(format!("pack {} is corrupt: {msg}", pack.to_hex()));
        }
        progress.advance(1);
    }
    progress.finish();
    let live_index: HashSet<String> = repo.index().ids().iter().map(crate::repo::index_name).collect();
    for o in b.list("index/", None)? {
        if !live_index.contains(&o.name) {
            rep.warnings.push(format!("{} is not a live index file (left by an interrupted writer; harmless)", o.name));
        }
    }
    let live_snaps: HashSet<String> = snaps.iter().map(|s| crate::repo::snapshot_name(&s.id)).collect();
    for o in b.list("snapshots/", None)? {
        if !live_snaps.contains(&o.name) {
            rep.warnings.push(format!("{} is not committed (left by an interrupted writer; harmless)", o.name));
        }
    }
    let mut leftovers: Vec<&String> = listed.keys().filter(|n| !referenced.contains(*n)).collect();
    leftovers.sort();
    for n in leftovers {
        rep.warnings.push(format!("{n} is not referenced by any index file (left by an interrupted writer; harmless)"));
    }
    Ok(rep)
}

fn check_pack(
    repo: &Repository,
    pack: &PackId,
    name: &str,
    entries: &[(BlobId, BlobLocation)],
    read_data: bool,
) -> std::result::Result<(), String> {
    let b = repo.backend();
    let whole = if read_data {
        let bytes = b.get(name).map_err(|e| e.to_string())?;
        if content_hash(&bytes) != pack.0 {
            return Err("its content does not match its name".into());
        }
        Some(bytes)
    } else {
        None
    };
    let (tail, size) = match &whole {
        Some(w) => (w.clone(), w.len() as u64),
        None => b.get_tail(name, 64 * 1024).map_err(|e: BackendError| e.to_string())?,
    };
    if tail.len() < TRAILER_LEN {
        return Err("it is truncated".into());
    }
    let header_len = u64::from(decode_trailer(&tail[tail.len() - TRAILER_LEN..]).map_err(|e| e.to_string())?);
    let header_end = size - TRAILER_LEN as u64;
    if header_len > header_end.saturating_sub(FileHeader::LEN as u64) {
        return Err("its header length is impossible".into());
    }
    let header_start = header_end - header_len;
    let tail_start = size - tail.len() as u64;
    let sealed = if header_start >= tail_start {
        tail.slice((header_start - tail_start) as usize..(header_end - tail_start) as usize)
    } else {
        b.get_range(name, header_start..header_end).map_err(|e| e.to_string())?
    };
    let plain = repo
        .key()
        .open(&aad(FileType::Pack, b"header", b""), &sealed)
        .map_err(|_| "its header does not authenticate".to_owned())?;
    let header = PackHeader::decode(&plain).map_err(|e| e.to_string())?;
    let mut listed: HashMap<BlobId, (u64, u32, u32)> = HashMap::new();
    for f in &header.frames {
        for bl in &f.blobs {
            listed.insert(bl.id, (f.offset, bl.raw_offset, bl.raw_length));
        }
    }
    for (id, loc) in entries {
        match listed.get(id) {
            Some(&(off, ro, rl)) if off == loc.frame.offset && ro == loc.raw_offset && rl == loc.raw_length => {}
            _ => return Err(format!("its header does not list blob {} where the index says", id.short())),
        }
    }
    if let Some(w) = whole {
        if FileHeader::decode(&w, FileType::Pack).is_err() {
            return Err("bad file header".into());
        }
        for f in &header.frames {
            let range = f.offset as usize..(f.offset + u64::from(f.sealed_length)) as usize;
            let Some(sealed) = w.get(range) else { return Err("a frame lies outside the pack".into()) };
            let ctx = frame_context(header.kind, &f.frame_id);
            let compressed = repo
                .key()
                .open(&aad(FileType::Pack, b"frame", &ctx), sealed)
                .map_err(|_| format!("the frame at byte {} does not authenticate", f.offset))?;
            let raw = match f.compression {
                Compression::None => compressed,
                Compression::Zstd => zstd::bulk::decompress(&compressed, f.raw_length as usize)
                    .map_err(|e| format!("frame at byte {}: {e}", f.offset))?,
            };
            if crate::format::pack::frame_id(repo.key().id_key(), &f.blobs) != f.frame_id {
                return Err(format!("the frame at byte {} has a wrong id", f.offset));
            }
            for bl in &f.blobs {
                let s = bl.raw_offset as usize;
                let Some(bytes) = raw.get(s..s + bl.raw_length as usize) else {
                    return Err("a blob lies outside its frame".into());
                };
                if repo.key().blob_id(bytes) != bl.id {
                    return Err(format!("blob {} does not match its id", bl.id.short()));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod subset_tests {
    use super::*;

    #[test]
    fn subsets() {
        assert_eq!(Subset::parse("10%"), Some(Subset::Percent(10.0)));
        assert_eq!(Subset::parse("2/5"), Some(Subset::Part { k: 2, n: 5 }));
        for bad in ["0%", "101%", "0/5", "6/5", "1/0", "x", "5"] {
            assert_eq!(Subset::parse(bad), None, "{bad}");
        }
        // Parts 1/n..n/n cover every pack exactly once; a percentage takes about that share.
        let packs: Vec<PackId> = (0..1000u32).map(|i| PackId(*blake3::hash(&i.to_le_bytes()).as_bytes())).collect();
        for p in &packs {
            let hits = (1..=4).filter(|k| Subset::Part { k: *k, n: 4 }.selects(p, 0)).count();
            assert_eq!(hits, 1);
        }
        let share = packs.iter().filter(|p| Subset::Percent(20.0).selects(p, 12345)).count();
        assert!((120..=280).contains(&share), "{share}");
    }
}

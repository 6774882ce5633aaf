//! Reading and writing index files.
//!
//! A reader never loads the whole index: for each live index file it reads the tail once
//! (trailer and footer; small files arrive whole in that one read), then only the blocks whose
//! id range can hold a wanted blob. Decoded blocks are kept in memory for the process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use bytes::Bytes;

use super::{index_name, Repository};
use crate::format::index::{
    block_context, decode_trailer, encode_trailer, BlobLocation, BlockRef, IndexBlock, IndexEntry, IndexFooter,
    IndexFrame, BLOCK_ENTRIES, TRAILER_LEN,
};
use crate::format::{aad, content_hash, BlobId, FileHeader, FileType, IndexId};
use crate::{Error, Result};

/// Bytes read from the end of an index file in the first request.
const TAIL_READ: u64 = 64 * 1024;

struct IndexFile {
    id: IndexId,
    head: OnceLock<(IndexFooter, Option<Bytes>)>,
    blocks: Mutex<HashMap<usize, Arc<IndexBlock>>>,
}

/// The live index files of a repository, newest last.
#[derive(Default)]
pub struct IndexSet {
    files: RwLock<Vec<Arc<IndexFile>>>,
    /// Index files this process wrote and has not committed yet: readable by this process only.
    pending: RwLock<Vec<IndexId>>,
}

impl IndexSet {
    /// Makes the set match the live list, keeping what was already loaded.
    pub fn set_files(&self, ids: &[IndexId]) {
        let mut ids = ids.to_vec();
        for p in self.pending.read().map(|p| p.clone()).unwrap_or_default() {
            if !ids.contains(&p) {
                ids.push(p);
            }
        }
        let Ok(mut files) = self.files.write() else { return };
        let mut old: HashMap<IndexId, Arc<IndexFile>> = files.drain(..).map(|f| (f.id, f)).collect();
        *files = ids
            .iter()
            .map(|id| {
                old.remove(id).unwrap_or_else(|| {
                    Arc::new(IndexFile { id: *id, head: OnceLock::new(), blocks: Mutex::new(HashMap::new()) })
                })
            })
            .collect();
    }

    /// Makes an index file this process has just written readable before it is committed.
    pub fn add_pending(&self, id: IndexId) {
        if let Ok(mut p) = self.pending.write() {
            p.push(id);
        }
        let live = self.ids();
        self.set_files(&live);
    }

    /// Forgets the pending files (after they were committed, or abandoned).
    pub fn clear_pending(&self) {
        if let Ok(mut p) = self.pending.write() {
            p.clear();
        }
    }

    fn files(&self) -> Vec<Arc<IndexFile>> {
        self.files.read().map(|f| f.clone()).unwrap_or_default()
    }

    pub fn ids(&self) -> Vec<IndexId> {
        self.files().iter().map(|f| f.id).collect()
    }

    /// Where a blob is. When a live index file has vanished (another writer merged it into a new
    /// one and deleted it), the live list is read again from the commit log and the lookup
    /// repeated once.
    pub fn lookup(&self, repo: &Repository, id: &BlobId) -> Result<Option<BlobLocation>> {
        match self.lookup_once(repo, id) {
            Err(Error::Vanished(_)) => {
                let state = super::commitlog::read_state(repo)?;
                self.set_files(&state.index);
                match self.lookup_once(repo, id) {
                    Err(Error::Vanished(name)) => Err(Error::corrupt("index file", name, "it is missing")),
                    other => other,
                }
            }
            other => other,
        }
    }

    fn lookup_once(&self, repo: &Repository, id: &BlobId) -> Result<Option<BlobLocation>> {
        for f in self.files().iter().rev() {
            let (footer, _) = head(repo, f)?;
            let Some(b) = footer.block_for(id) else { continue };
            let block = block(repo, f, b)?;
            if let Some(loc) = block.find(id) {
                return Ok(Some(loc));
            }
        }
        Ok(None)
    }

    /// Every entry of every live index file (for `check` and `stats`), file by file.
    pub fn for_each_entry(
        &self,
        repo: &Repository,
        mut f: impl FnMut(&IndexId, &BlobId, &BlobLocation) -> Result<()>,
    ) -> Result<()> {
        for file in &self.files() {
            let (footer, _) = head(repo, file)?;
            for b in 0..footer.blocks.len() {
                let block = block(repo, file, b)?;
                for e in &block.entries {
                    let loc = BlobLocation {
                        frame: block.frames[e.frame as usize].clone(),
                        blob_type: e.blob_type,
                        raw_offset: e.raw_offset,
                        raw_length: e.raw_length,
                    };
                    f(&file.id, &e.id, &loc)?;
                }
            }
        }
        Ok(())
    }
}

fn corrupt(f: &IndexFile, detail: impl std::fmt::Display) -> Error {
    Error::corrupt("index file", f.id.to_hex(), detail)
}

fn head<'a>(repo: &Repository, f: &'a IndexFile) -> Result<&'a (IndexFooter, Option<Bytes>)> {
    if let Some(h) = f.head.get() {
        return Ok(h);
    }
    let name = index_name(&f.id);
    let (tail, size) = match repo.backend().get_tail(&name, TAIL_READ) {
        Ok(t) => t,
        Err(crate::backend::BackendError::NotFound(_)) => return Err(Error::Vanished(f.id.to_hex())),
        Err(e) => return Err(Error::Backend(e)),
    };
    let whole = (tail.len() as u64 == size).then(|| tail.clone());
    if let Some(w) = &whole {
        if content_hash(w) != f.id.0 {
            return Err(corrupt(f, "its content does not match its name"));
        }
        FileHeader::decode(w, FileType::Index).map_err(|e| Error::from_format("index file", &f.id.to_hex(), e))?;
    }
    if tail.len() < TRAILER_LEN {
        return Err(corrupt(f, "it is truncated"));
    }
    let footer_len = decode_trailer(&tail[tail.len() - TRAILER_LEN..]).map_err(|e| corrupt(f, e))? as u64;
    let footer_end = size - TRAILER_LEN as u64;
    if footer_len > footer_end {
        return Err(corrupt(f, "its footer length is impossible"));
    }
    let footer_start = footer_end - footer_len;
    let tail_start = size - tail.len() as u64;
    let sealed = if footer_start >= tail_start {
        tail.slice((footer_start - tail_start) as usize..(footer_end - tail_start) as usize)
    } else {
        repo.backend().get_range(&name, footer_start..footer_end).map_err(Error::Backend)?
    };
    let plain = repo
        .key()
        .open(&aad(FileType::Index, b"footer", b""), &sealed)
        .map_err(|_| corrupt(f, "its footer does not authenticate"))?;
    let footer = IndexFooter::decode(&plain).map_err(|e| corrupt(f, e))?;
    for b in &footer.blocks {
        if b.offset < FileHeader::LEN as u64 || b.offset + u64::from(b.sealed_length) > footer_start {
            return Err(corrupt(f, "a block lies outside the file"));
        }
    }
    Ok(f.head.get_or_init(|| (footer, whole)))
}

fn block(repo: &Repository, f: &IndexFile, n: usize) -> Result<Arc<IndexBlock>> {
    if let Some(b) = f.blocks.lock().ok().and_then(|m| m.get(&n).cloned()) {
        return Ok(b);
    }
    let (footer, whole) = head(repo, f)?;
    let r = &footer.blocks[n];
    let range = r.offset..r.offset + u64::from(r.sealed_length);
    let sealed = match whole {
        Some(w) => w.slice(range.start as usize..range.end as usize),
        None => repo.backend().get_range(&index_name(&f.id), range).map_err(Error::Backend)?,
    };
    let plain = repo
        .key()
        .open(&aad(FileType::Index, b"block", &block_context(&footer.tag, n as u32)), &sealed)
        .map_err(|_| corrupt(f, format!("block {n} does not authenticate")))?;
    let block = IndexBlock::decode(&plain).map_err(|e| corrupt(f, e))?;
    if block.entries.len() != r.entries as usize
        || block.entries.first().map(|e| e.id) != Some(r.first)
        || block.entries.last().map(|e| e.id) != Some(r.last)
    {
        return Err(corrupt(f, format!("block {n} does not match its footer")));
    }
    let block = Arc::new(block);
    if let Ok(mut m) = f.blocks.lock() {
        m.insert(n, block.clone());
    }
    Ok(block)
}

/// Live index files above which a writer merges them after its commit.
pub const MAX_LIVE_INDEX_FILES: usize = 8;

/// Which live index files to merge, if there are too many: every file but the largest, unless
/// together they outgrow half of it (then all of them). Keeps the number of files a cold reader
/// must open bounded while rarely rewriting the large base file.
pub fn compaction_plan(sizes: &[(IndexId, u64)]) -> Option<Vec<IndexId>> {
    if sizes.len() <= MAX_LIVE_INDEX_FILES {
        return None;
    }
    let (largest, largest_size) = sizes.iter().max_by_key(|(_, s)| *s).copied()?;
    let rest: u64 = sizes.iter().filter(|(id, _)| *id != largest).map(|(_, s)| s).sum();
    if rest * 2 > largest_size {
        Some(sizes.iter().map(|(id, _)| *id).collect())
    } else {
        Some(sizes.iter().filter(|(id, _)| *id != largest).map(|(id, _)| *id).collect())
    }
}

/// Merges index files into one new file (written, not committed); returns its id.
pub fn merge_files(repo: &Repository, ids: &[IndexId]) -> Result<IndexId> {
    let set = IndexSet::default();
    set.set_files(ids);
    let mut locs = Locations::default();
    set.for_each_entry(repo, |_, id, loc| {
        locs.push(*id, loc);
        Ok(())
    })?;
    Ok(write_index(repo, locs)?.0)
}

/// Stored size of an index file (read from its tail, usually cached).
pub fn file_size(repo: &Repository, id: &IndexId) -> Result<u64> {
    let (_, size) = repo.backend().get_tail(&index_name(id), TRAILER_LEN as u64).map_err(Error::Backend)?;
    Ok(size)
}

/// Where newly written blobs are: each frame once, each blob as a small record pointing at its
/// frame (about 32 bytes a blob, so a million new blobs fit in tens of MiB).
#[derive(Default)]
pub struct Locations {
    pub frames: Vec<IndexFrame>,
    pub blobs: Vec<WrittenBlob>,
    numbers: HashMap<IndexFrame, u32>,
}

#[derive(Clone, Copy, Debug)]
pub struct WrittenBlob {
    pub id: BlobId,
    pub frame: u32,
    pub blob_type: crate::format::pack::BlobType,
    pub raw_offset: u32,
    pub raw_length: u32,
}

impl Locations {
    /// The frames the locations point into.
    pub fn frames(&self) -> &[IndexFrame] {
        &self.frames
    }

    /// The ids of the blobs located.
    pub fn blob_ids(&self) -> impl Iterator<Item = BlobId> + '_ {
        self.blobs.iter().map(|b| b.id)
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    fn frame_number(&mut self, frame: &IndexFrame) -> u32 {
        if let Some(n) = self.numbers.get(frame) {
            return *n;
        }
        let n = self.frames.len() as u32;
        self.frames.push(frame.clone());
        self.numbers.insert(frame.clone(), n);
        n
    }

    pub fn push(&mut self, id: BlobId, loc: &BlobLocation) {
        let frame = self.frame_number(&loc.frame);
        self.blobs.push(WrittenBlob {
            id,
            frame,
            blob_type: loc.blob_type,
            raw_offset: loc.raw_offset,
            raw_length: loc.raw_length,
        });
    }

    pub fn extend(&mut self, other: Locations) {
        for b in other.blobs {
            let frame = self.frame_number(&other.frames[b.frame as usize]);
            self.blobs.push(WrittenBlob { frame, ..b });
        }
    }
}

/// Writes one index file listing `locs` (any order; of equal ids the first is kept); returns its
/// id and stored size.
pub fn write_index(repo: &Repository, locs: Locations) -> Result<(IndexId, u64)> {
    let Locations { frames, mut blobs, .. } = locs;
    blobs.sort_by_key(|b| b.id);
    blobs.dedup_by(|a, b| a.id == b.id);
    let mut out = FileHeader::encode(FileType::Index).to_vec();
    let mut footer = IndexFooter::default();
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut footer.tag);
    for (n, chunk) in blobs.chunks(BLOCK_ENTRIES).enumerate() {
        let mut block = IndexBlock::default();
        let mut local: HashMap<u32, u32> = HashMap::new();
        for b in chunk {
            let next = block.frames.len() as u32;
            let frame = *local.entry(b.frame).or_insert_with(|| {
                block.frames.push(frames[b.frame as usize].clone());
                next
            });
            block.entries.push(IndexEntry {
                id: b.id,
                frame,
                blob_type: b.blob_type,
                raw_offset: b.raw_offset,
                raw_length: b.raw_length,
            });
        }
        let sealed =
            repo.key().seal(&aad(FileType::Index, b"block", &block_context(&footer.tag, n as u32)), &block.encode());
        footer.blocks.push(BlockRef {
            first: chunk[0].id,
            last: chunk[chunk.len() - 1].id,
            offset: out.len() as u64,
            sealed_length: sealed.len() as u32,
            entries: chunk.len() as u32,
        });
        out.extend_from_slice(&sealed);
    }
    let sealed_footer = repo.key().seal(&aad(FileType::Index, b"footer", b""), &footer.encode());
    out.extend_from_slice(&sealed_footer);
    out.extend_from_slice(&encode_trailer(sealed_footer.len() as u32));
    let id = IndexId(content_hash(&out));
    let len = out.len() as u64;
    repo.backend().put_new(&index_name(&id), Bytes::from(out)).map_err(Error::Backend)?;
    Ok((id, len))
}

//! The packer: groups new blobs into compressed frames and frames into packs.
//!
//! Blobs wait in a buffer (bounded by `FLUSH_BYTES`); a flush sorts them by a similarity key
//! (blob type, then kind, group, name, namespace), so the same Deployment from many namespaces
//! and the variants of one CRD sit side by side, cuts the sorted run into frames of about
//! `frame_target` uncompressed bytes, compresses and seals the frames on all cores, and writes
//! packs of about `pack_target` bytes. Restoring one object later reads one frame.

use std::collections::HashSet;

use bytes::Bytes;

use super::index::Locations;
use super::{pack_name, Repository};
use crate::format::index::{BlobLocation, IndexFrame};
use crate::format::pack::{
    encode_trailer, frame_context, frame_id, BlobType, Compression, FrameBlob, FrameHeader, PackHeader, PackKind,
};
use crate::format::{aad, content_hash, BlobId, FileHeader, FileType, PackId};
use crate::{Error, Result};

/// Uncompressed bytes buffered before a flush.
const FLUSH_BYTES: usize = 64 << 20;

struct Pending {
    id: BlobId,
    blob_type: BlobType,
    data: Vec<u8>,
    sort_key: Vec<u8>,
}

struct SealedFrame {
    sealed: Vec<u8>,
    raw_length: u32,
    compression: Compression,
    frame_id: crate::format::FrameId,
    blobs: Vec<FrameBlob>,
}

pub struct Packer {
    kind: PackKind,
    pending: Vec<Pending>,
    pending_bytes: usize,
    seen: HashSet<BlobId>,
    /// Locations of every blob written so far (for the index file).
    pub written: Locations,
    /// Stored bytes of the packs written.
    pub bytes_written: u64,
    pub packs_written: u64,
}

impl Packer {
    pub fn new(kind: PackKind) -> Packer {
        Packer {
            kind,
            pending: Vec::new(),
            pending_bytes: 0,
            seen: HashSet::new(),
            written: Locations::default(),
            bytes_written: 0,
            packs_written: 0,
        }
    }

    /// Takes over what another packer (already flushed) wrote: its locations and counts.
    pub fn absorb(&mut self, other: Packer) {
        debug_assert!(other.pending.is_empty());
        self.written.extend(other.written);
        self.bytes_written += other.bytes_written;
        self.packs_written += other.packs_written;
        self.seen.extend(other.seen);
    }

    /// Whether this packer already holds (or wrote) the blob.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.seen.contains(id)
    }

    /// Queues a blob; writes packs when the buffer is full. A blob already queued is ignored.
    pub fn add(
        &mut self,
        repo: &Repository,
        id: BlobId,
        blob_type: BlobType,
        data: Vec<u8>,
        sort_key: Vec<u8>,
    ) -> Result<()> {
        debug_assert_eq!(blob_type.pack_kind(), self.kind);
        if !self.seen.insert(id) {
            return Ok(());
        }
        self.pending_bytes += data.len();
        self.pending.push(Pending { id, blob_type, data, sort_key });
        if self.pending_bytes >= FLUSH_BYTES {
            self.flush(repo)?;
        }
        Ok(())
    }

    /// Writes everything queued.
    pub fn flush(&mut self, repo: &Repository) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        pending.sort_by(|a, b| a.sort_key.cmp(&b.sort_key).then(a.id.cmp(&b.id)));
        let params = &repo.config().packing;
        let target = params.frame_target as usize;

        // Cut the sorted run into frames.
        let mut groups: Vec<Vec<Pending>> = Vec::new();
        let mut cur: Vec<Pending> = Vec::new();
        let mut cur_len = 0;
        for p in pending {
            if !cur.is_empty() && cur_len + p.data.len() > target {
                groups.push(std::mem::take(&mut cur));
                cur_len = 0;
            }
            cur_len += p.data.len();
            cur.push(p);
        }
        if !cur.is_empty() {
            groups.push(cur);
        }

        // Compress and seal on every core, a wave of frames at a time; each wave's blobs are
        // dropped once sealed and packs are written as they fill, so memory stays near the
        // buffer's size instead of several copies of it.
        // Tree nodes are mostly ids, which do not compress: a high level only costs time there.
        let level = if self.kind == PackKind::Tree { params.zstd_level.min(6) } else { params.zstd_level };
        let kind = self.kind;
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).max(1);
        let pack_target = params.pack_target as usize;
        let mut batch: Vec<SealedFrame> = Vec::new();
        let mut batch_len = 0;
        let mut groups = groups.into_iter().peekable();
        while groups.peek().is_some() {
            let wave: Vec<std::sync::Mutex<Option<Vec<Pending>>>> =
                groups.by_ref().take(threads * 4).map(|g| std::sync::Mutex::new(Some(g))).collect();
            let slots: Vec<std::sync::Mutex<Option<SealedFrame>>> = wave.iter().map(|_| Default::default()).collect();
            let next = std::sync::atomic::AtomicUsize::new(0);
            std::thread::scope(|s| {
                for _ in 0..threads.min(wave.len()) {
                    s.spawn(|| loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(cell) = wave.get(i) else { break };
                        let Some(group) = cell.lock().ok().and_then(|mut g| g.take()) else { continue };
                        let f = seal_frame(repo, kind, &group, level);
                        drop(group);
                        if let Ok(mut slot) = slots[i].lock() {
                            *slot = Some(f);
                        }
                    });
                }
            });
            for slot in slots {
                let Some(f) = slot.into_inner().ok().flatten() else {
                    return Err(Error::Commit("a compression thread failed".into()));
                };
                batch_len += f.sealed.len();
                batch.push(f);
                if batch_len >= pack_target {
                    self.write_pack(repo, std::mem::take(&mut batch))?;
                    batch_len = 0;
                }
            }
        }
        if !batch.is_empty() {
            self.write_pack(repo, batch)?;
        }
        Ok(())
    }

    fn write_pack(&mut self, repo: &Repository, frames: Vec<SealedFrame>) -> Result<()> {
        let mut out = FileHeader::encode(FileType::Pack).to_vec();
        let mut header = PackHeader { kind: self.kind, frames: Vec::with_capacity(frames.len()) };
        for f in frames {
            let offset = out.len() as u64;
            out.extend_from_slice(&f.sealed);
            header.frames.push(FrameHeader {
                offset,
                sealed_length: f.sealed.len() as u32,
                raw_length: f.raw_length,
                compression: f.compression,
                frame_id: f.frame_id,
                blobs: f.blobs,
            });
        }
        let sealed_header = repo.key().seal(&aad(FileType::Pack, b"header", b""), &header.encode());
        out.extend_from_slice(&sealed_header);
        out.extend_from_slice(&encode_trailer(sealed_header.len() as u32));
        let pack = PackId(content_hash(&out));
        let len = out.len() as u64;
        repo.backend().put_new(&pack_name(self.kind, &pack), Bytes::from(out)).map_err(Error::Backend)?;
        self.bytes_written += len;
        self.packs_written += 1;
        for fh in header.frames {
            let frame = IndexFrame {
                pack,
                pack_kind: self.kind,
                offset: fh.offset,
                sealed_length: fh.sealed_length,
                raw_length: fh.raw_length,
                compression: fh.compression,
                frame_id: fh.frame_id,
            };
            for b in fh.blobs {
                let loc = BlobLocation {
                    frame: frame.clone(),
                    blob_type: b.blob_type,
                    raw_offset: b.raw_offset,
                    raw_length: b.raw_length,
                };
                self.written.push(b.id, &loc);
            }
        }
        Ok(())
    }
}

fn seal_frame(repo: &Repository, kind: PackKind, group: &[Pending], level: i32) -> SealedFrame {
    let total: usize = group.iter().map(|p| p.data.len()).sum();
    let mut raw = Vec::with_capacity(total);
    let mut blobs = Vec::with_capacity(group.len());
    for p in group {
        blobs.push(FrameBlob {
            id: p.id,
            blob_type: p.blob_type,
            raw_offset: raw.len() as u32,
            raw_length: p.data.len() as u32,
        });
        raw.extend_from_slice(&p.data);
    }
    let (payload, compression) = match zstd::bulk::compress(&raw, level) {
        Ok(c) if c.len() < raw.len() => (c, Compression::Zstd),
        _ => (raw.clone(), Compression::None),
    };
    let fid = frame_id(repo.key().id_key(), &blobs);
    let sealed = repo.key().seal(&aad(FileType::Pack, b"frame", &frame_context(kind, &fid)), &payload);
    SealedFrame { sealed, raw_length: raw.len() as u32, compression, frame_id: fid, blobs }
}

//! Index files: where each blob is, as a sorted table in independently sealed blocks.
//!
//! ```text
//! index   = FileHeader(type 4)[8] || sealed(block_0) || ... || sealed(block_k) || sealed(footer) || trailer[12]
//! trailer = footer_length u32le || version u8 (=1) || zero[3] || "KSIX"
//! block   AAD = aad(Index, "block", footer tag[16] || block number u32le)
//! footer  AAD = aad(Index, "footer", "")
//! ```
//! Like an SSTable: the footer lists each block's first and last blob id, so a reader finds the
//! one block that can hold an id with two ranged reads (trailer+footer, then the block) and never
//! needs the whole index in memory. Each block is self-contained: it carries the table of the
//! frames its entries point into.

use super::pack::{BlobType, Compression, PackKind};
use super::wire::{put_varint, Reader};
use super::{BlobId, FormatError, FrameId, PackId, FORMAT_VERSION};

pub const TRAILER_LEN: usize = 12;
const TRAILER_MAGIC: &[u8; 4] = b"KSIX";
/// Entries per block written by this implementation (readers accept any count).
pub const BLOCK_ENTRIES: usize = 2048;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IndexFrame {
    pub pack: PackId,
    pub pack_kind: PackKind,
    pub offset: u64,
    pub sealed_length: u32,
    pub raw_length: u32,
    pub compression: Compression,
    pub frame_id: FrameId,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub id: BlobId,
    /// Position of the entry's frame in its block's frame table.
    pub frame: u32,
    pub blob_type: BlobType,
    pub raw_offset: u32,
    pub raw_length: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IndexBlock {
    pub frames: Vec<IndexFrame>,
    /// Strictly ascending by id.
    pub entries: Vec<IndexEntry>,
}

/// Everything needed to read one blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    pub frame: IndexFrame,
    pub blob_type: BlobType,
    pub raw_offset: u32,
    pub raw_length: u32,
}

impl IndexBlock {
    /// ```text
    /// version u8 (=1) || frame count varint || frames || entry count varint || entries
    /// frame = pack id[32] || pack kind u8 || offset varint || sealed_length varint
    ///         || raw_length varint || compression u8 || frame_id[32]
    /// entry = blob id[16] || frame number varint || type u8 || raw_offset varint || raw_length varint
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.frames.len() * 80 + self.entries.len() * 40);
        out.push(1);
        put_varint(&mut out, self.frames.len() as u64);
        for f in &self.frames {
            out.extend_from_slice(&f.pack.0);
            out.push(f.pack_kind as u8);
            put_varint(&mut out, f.offset);
            put_varint(&mut out, u64::from(f.sealed_length));
            put_varint(&mut out, u64::from(f.raw_length));
            out.push(f.compression as u8);
            out.extend_from_slice(&f.frame_id.0);
        }
        put_varint(&mut out, self.entries.len() as u64);
        for e in &self.entries {
            out.extend_from_slice(&e.id.0);
            put_varint(&mut out, u64::from(e.frame));
            out.push(e.blob_type as u8);
            put_varint(&mut out, u64::from(e.raw_offset));
            put_varint(&mut out, u64::from(e.raw_length));
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<IndexBlock, FormatError> {
        let mut r = Reader::new(bytes, "index block");
        let version = r.u8()?;
        if version != 1 {
            return Err(FormatError::UnsupportedVersion { found: version, supported: 1 });
        }
        let nf = r.count(70)?;
        let mut frames = Vec::with_capacity(nf);
        for _ in 0..nf {
            let pack = PackId(r.id()?);
            let pack_kind = PackKind::from_u8(r.u8()?).ok_or_else(|| r.err("unknown pack kind"))?;
            let offset = r.varint()?;
            let sealed_length = r.varint_u32()?;
            let raw_length = r.varint_u32()?;
            let compression = Compression::from_u8(r.u8()?).ok_or_else(|| r.err("unknown compression"))?;
            let frame_id = FrameId(r.id()?);
            frames.push(IndexFrame { pack, pack_kind, offset, sealed_length, raw_length, compression, frame_id });
        }
        let ne = r.count(20)?;
        let mut entries: Vec<IndexEntry> = Vec::with_capacity(ne);
        for _ in 0..ne {
            let id = BlobId(r.id16()?);
            let frame = r.varint_u32()?;
            if frame as usize >= frames.len() {
                return Err(r.err("entry points at a frame the block does not have"));
            }
            let blob_type = BlobType::from_u8(r.u8()?).ok_or_else(|| r.err("unknown blob type"))?;
            let raw_offset = r.varint_u32()?;
            let raw_length = r.varint_u32()?;
            if u64::from(raw_offset) + u64::from(raw_length) > u64::from(frames[frame as usize].raw_length) {
                return Err(r.err("entry extends past the end of its frame"));
            }
            if let Some(prev) = entries.last() {
                if prev.id >= id {
                    return Err(r.err("entries are not strictly ascending"));
                }
            }
            entries.push(IndexEntry { id, frame, blob_type, raw_offset, raw_length });
        }
        r.finish()?;
        Ok(IndexBlock { frames, entries })
    }

    pub fn find(&self, id: &BlobId) -> Option<BlobLocation> {
        // Compared as integers: ids are big-endian 128-bit numbers, and this is the hot path.
        let key = u128::from_be_bytes(id.0);
        let i = self.entries.binary_search_by(|e| u128::from_be_bytes(e.id.0).cmp(&key)).ok()?;
        let e = &self.entries[i];
        Some(BlobLocation {
            frame: self.frames[e.frame as usize].clone(),
            blob_type: e.blob_type,
            raw_offset: e.raw_offset,
            raw_length: e.raw_length,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockRef {
    pub first: BlobId,
    pub last: BlobId,
    /// Byte offset of the sealed block from the start of the file.
    pub offset: u64,
    pub sealed_length: u32,
    pub entries: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct IndexFooter {
    /// Random bytes chosen per index file and bound into each block's seal, so that a block
    /// cannot be passed off as part of another index file.
    pub tag: [u8; 16],
    /// Ascending and non-overlapping.
    pub blocks: Vec<BlockRef>,
}

impl IndexFooter {
    /// `version u8 (=1) || tag[16] || block count varint || (first[16] || last[16] || offset
    /// varint || sealed_length varint || entries varint)*`
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + self.blocks.len() * 80);
        out.push(1);
        out.extend_from_slice(&self.tag);
        put_varint(&mut out, self.blocks.len() as u64);
        for b in &self.blocks {
            out.extend_from_slice(&b.first.0);
            out.extend_from_slice(&b.last.0);
            put_varint(&mut out, b.offset);
            put_varint(&mut out, u64::from(b.sealed_length));
            put_varint(&mut out, u64::from(b.entries));
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<IndexFooter, FormatError> {
        let mut r = Reader::new(bytes, "index footer");
        let version = r.u8()?;
        if version != 1 {
            return Err(FormatError::UnsupportedVersion { found: version, supported: 1 });
        }
        let tag = r.id16()?;
        let n = r.count(35)?;
        let mut blocks: Vec<BlockRef> = Vec::with_capacity(n);
        for _ in 0..n {
            let first = BlobId(r.id16()?);
            let last = BlobId(r.id16()?);
            let offset = r.varint()?;
            let sealed_length = r.varint_u32()?;
            let entries = r.varint_u32()?;
            if first > last {
                return Err(r.err("block's first id is above its last"));
            }
            if let Some(prev) = blocks.last() {
                if prev.last >= first {
                    return Err(r.err("blocks overlap or are out of order"));
                }
            }
            blocks.push(BlockRef { first, last, offset, sealed_length, entries });
        }
        r.finish()?;
        Ok(IndexFooter { tag, blocks })
    }

    /// The block that may hold `id`.
    pub fn block_for(&self, id: &BlobId) -> Option<usize> {
        let key = u128::from_be_bytes(id.0);
        let i = self.blocks.partition_point(|b| u128::from_be_bytes(b.last.0) < key);
        (i < self.blocks.len() && self.blocks[i].first <= *id).then_some(i)
    }
}

pub fn encode_trailer(footer_length: u32) -> [u8; TRAILER_LEN] {
    let mut t = [0u8; TRAILER_LEN];
    t[..4].copy_from_slice(&footer_length.to_le_bytes());
    t[4] = FORMAT_VERSION;
    t[8..].copy_from_slice(TRAILER_MAGIC);
    t
}

pub fn decode_trailer(t: &[u8]) -> Result<u32, FormatError> {
    if t.len() != TRAILER_LEN || &t[8..] != TRAILER_MAGIC {
        return Err(FormatError::Invalid("index trailer: bad magic (truncated index file?)".into()));
    }
    if t[4] != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion { found: t[4], supported: FORMAT_VERSION });
    }
    if t[5..8] != [0, 0, 0] {
        return Err(FormatError::Invalid("index trailer: reserved bytes are not zero".into()));
    }
    Ok(u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
}

/// The AEAD context of block number `n` of the index file whose footer has `tag`:
/// `tag[16] || n u32le`.
pub fn block_context(tag: &[u8; 16], n: u32) -> [u8; 20] {
    let mut c = [0u8; 20];
    c[..16].copy_from_slice(tag);
    c[16..].copy_from_slice(&n.to_le_bytes());
    c
}

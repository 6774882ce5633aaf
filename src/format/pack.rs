//! Packs: many compressed, encrypted frames, then an encrypted header, then a plaintext trailer.
//!
//! ```text
//! pack    = FileHeader(type 3)[8] || frame_0 || ... || frame_n || sealed(header) || trailer[12]
//! trailer = header_length u32le || version u8 (=1) || zero[3] || "KSPK"
//! frame   = sealed(zstd(blob_a || blob_b || ...))      AAD = aad(Pack, "frame", kind || frame id)
//! header  = PackHeader (below)                         AAD = aad(Pack, "header", "")
//! ```
//! A frame holds several blobs compressed together, so the redundancy between similar objects
//! (one Deployment in many namespaces) is captured, while reading one blob still reads one frame.

use super::wire::{put_varint, Reader};
use super::{BlobId, FormatError, FrameId, FORMAT_VERSION};

pub const TRAILER_LEN: usize = 12;
const TRAILER_MAGIC: &[u8; 4] = b"KSPK";

/// What a stored blob is. Data packs hold the first three; tree packs only `Tree`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum BlobType {
    /// A resource's desired state (canonical JSON), when it fits in one blob.
    Desired = 1,
    /// A resource's server-owned fields (canonical JSON).
    Server = 2,
    /// A content-defined chunk of a part too large for one blob.
    Chunk = 3,
    /// A tree node.
    Tree = 4,
}

impl BlobType {
    pub fn from_u8(b: u8) -> Option<BlobType> {
        Some(match b {
            1 => BlobType::Desired,
            2 => BlobType::Server,
            3 => BlobType::Chunk,
            4 => BlobType::Tree,
            _ => return None,
        })
    }

    pub fn pack_kind(self) -> PackKind {
        if self == BlobType::Tree {
            PackKind::Tree
        } else {
            PackKind::Data
        }
    }
}

/// Data and tree blobs live in separate packs, so trees can be cached and read apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PackKind {
    Data = 1,
    Tree = 2,
}

impl PackKind {
    pub fn from_u8(b: u8) -> Option<PackKind> {
        match b {
            1 => Some(PackKind::Data),
            2 => Some(PackKind::Tree),
            _ => None,
        }
    }
}

/// How a frame's plaintext is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Compression {
    None = 0,
    Zstd = 1,
}

impl Compression {
    pub fn from_u8(b: u8) -> Option<Compression> {
        match b {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameBlob {
    pub id: BlobId,
    pub blob_type: BlobType,
    /// Where the blob starts in the frame's uncompressed bytes.
    pub raw_offset: u32,
    pub raw_length: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Byte offset of the sealed frame from the start of the pack file.
    pub offset: u64,
    pub sealed_length: u32,
    /// Length of the frame's uncompressed bytes (the blobs back to back).
    pub raw_length: u32,
    pub compression: Compression,
    pub frame_id: FrameId,
    pub blobs: Vec<FrameBlob>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackHeader {
    pub kind: PackKind,
    pub frames: Vec<FrameHeader>,
}

/// The frame id: keyed BLAKE3 (the repository's id key) over "kubesnap frame v1" and the ids
/// and types of the frame's blobs in order. It is bound into the frame's AEAD, so a frame
/// cannot be passed off as holding other blobs.
pub fn frame_id(id_key: &[u8; 32], blobs: &[FrameBlob]) -> FrameId {
    let mut h = blake3::Hasher::new_keyed(id_key);
    h.update(b"kubesnap frame v1");
    for b in blobs {
        h.update(&b.id.0);
        h.update(&[b.blob_type as u8]);
        h.update(&b.raw_length.to_le_bytes());
    }
    FrameId(*h.finalize().as_bytes())
}

/// The AEAD context of a frame.
pub fn frame_context(kind: PackKind, frame_id: &FrameId) -> Vec<u8> {
    let mut c = Vec::with_capacity(33);
    c.push(kind as u8);
    c.extend_from_slice(&frame_id.0);
    c
}

impl PackHeader {
    /// ```text
    /// version u8 (=1) || kind u8 || frame count varint || frames
    /// frame = offset varint || sealed_length varint || raw_length varint || compression u8
    ///         || frame_id[32] || blob count varint || blobs
    /// blob  = id[16] || type u8 || raw_offset varint || raw_length varint
    /// ```
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.frames.len() * 64);
        out.push(1);
        out.push(self.kind as u8);
        put_varint(&mut out, self.frames.len() as u64);
        for f in &self.frames {
            put_varint(&mut out, f.offset);
            put_varint(&mut out, u64::from(f.sealed_length));
            put_varint(&mut out, u64::from(f.raw_length));
            out.push(f.compression as u8);
            out.extend_from_slice(&f.frame_id.0);
            put_varint(&mut out, f.blobs.len() as u64);
            for b in &f.blobs {
                out.extend_from_slice(&b.id.0);
                out.push(b.blob_type as u8);
                put_varint(&mut out, u64::from(b.raw_offset));
                put_varint(&mut out, u64::from(b.raw_length));
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<PackHeader, FormatError> {
        let mut r = Reader::new(bytes, "pack header");
        let version = r.u8()?;
        if version != 1 {
            return Err(FormatError::UnsupportedVersion { found: version, supported: 1 });
        }
        let kind = PackKind::from_u8(r.u8()?).ok_or_else(|| r.err("unknown pack kind"))?;
        let n = r.count(38)?;
        let mut frames = Vec::with_capacity(n);
        for _ in 0..n {
            let offset = r.varint()?;
            let sealed_length = r.varint_u32()?;
            let raw_length = r.varint_u32()?;
            let compression = Compression::from_u8(r.u8()?).ok_or_else(|| r.err("unknown compression"))?;
            let frame_id = FrameId(r.id()?);
            let m = r.count(19)?;
            let mut blobs = Vec::with_capacity(m);
            for _ in 0..m {
                let id = BlobId(r.id16()?);
                let blob_type = BlobType::from_u8(r.u8()?).ok_or_else(|| r.err("unknown blob type"))?;
                if blob_type.pack_kind() != kind {
                    return Err(r.err("blob type does not belong in this kind of pack"));
                }
                let raw_offset = r.varint_u32()?;
                let raw_len = r.varint_u32()?;
                if u64::from(raw_offset) + u64::from(raw_len) > u64::from(raw_length) {
                    return Err(r.err("blob extends past the end of its frame"));
                }
                blobs.push(FrameBlob { id, blob_type, raw_offset, raw_length: raw_len });
            }
            frames.push(FrameHeader { offset, sealed_length, raw_length, compression, frame_id, blobs });
        }
        r.finish()?;
        Ok(PackHeader { kind, frames })
    }
}

/// Encodes the 12-byte trailer that ends every pack.
pub fn encode_trailer(header_length: u32) -> [u8; TRAILER_LEN] {
    let mut t = [0u8; TRAILER_LEN];
    t[..4].copy_from_slice(&header_length.to_le_bytes());
    t[4] = FORMAT_VERSION;
    t[8..].copy_from_slice(TRAILER_MAGIC);
    t
}

/// Decodes a pack's trailer (its last 12 bytes) into the sealed header's length.
pub fn decode_trailer(t: &[u8]) -> Result<u32, FormatError> {
    if t.len() != TRAILER_LEN || &t[8..] != TRAILER_MAGIC {
        return Err(FormatError::Invalid("pack trailer: bad magic (truncated pack?)".into()));
    }
    if t[4] != FORMAT_VERSION {
        return Err(FormatError::UnsupportedVersion { found: t[4], supported: FORMAT_VERSION });
    }
    if t[5..8] != [0, 0, 0] {
        return Err(FormatError::Invalid("pack trailer: reserved bytes are not zero".into()));
    }
    Ok(u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
}

//! Pure encoding and decoding of every object the repository stores. No I/O, no keys held.
//!
//! This module is the code side of `format-spec/`: each stored object type has its encoder and a
//! decoder that never panics, whatever bytes it is given (the fuzz targets hold it to that).
//! What is versioned: every stored file starts with [`FileHeader`] (magic, format version, file
//! type); the config lists feature flags in three classes (see [`config`]); binary structures
//! carry their own version byte. A reader refuses a version or an incompatible feature it does
//! not know instead of guessing.

pub mod config;
pub mod ids;
pub mod index;
pub mod key;
pub mod log;
pub mod pack;
pub mod resource;
pub mod snapshot;
pub mod tree;
pub mod wire;

pub use ids::{content_hash, BlobId, FrameId, IndexId, KeyId, PackId, RepoId, SnapshotId};

/// Errors of decoding stored bytes.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("{0}")]
    Invalid(String),
    #[error(
        "written by a newer kubesnap (format version {found}; this one reads version {supported}): upgrade kubesnap"
    )]
    UnsupportedVersion { found: u8, supported: u8 },
    #[error("not a kubesnap file (bad magic)")]
    BadMagic,
    #[error("unexpected file type {found} where {expected} was expected")]
    WrongFileType { found: u8, expected: &'static str },
}

/// The repository format version this code writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// The four bytes every stored file starts with.
pub const MAGIC: &[u8; 4] = b"KSNP";

/// What a stored file is; the byte after the format version in every file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FileType {
    Config = 1,
    Key = 2,
    Pack = 3,
    Index = 4,
    Snapshot = 5,
    LogEntry = 6,
    Checkpoint = 7,
}

impl FileType {
    pub fn from_u8(b: u8) -> Option<FileType> {
        Some(match b {
            1 => FileType::Config,
            2 => FileType::Key,
            3 => FileType::Pack,
            4 => FileType::Index,
            5 => FileType::Snapshot,
            6 => FileType::LogEntry,
            7 => FileType::Checkpoint,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Key => "key file",
            FileType::Pack => "pack",
            FileType::Index => "index file",
            FileType::Snapshot => "snapshot manifest",
            FileType::LogEntry => "commit-log entry",
            FileType::Checkpoint => "checkpoint",
        }
    }
}

/// `MAGIC[4] || version[1] || file type[1] || flags[2] (zero in v1)`: the first 8 bytes of
/// every stored file.
pub struct FileHeader;

impl FileHeader {
    pub const LEN: usize = 8;

    pub fn encode(file_type: FileType) -> [u8; 8] {
        [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], FORMAT_VERSION, file_type as u8, 0, 0]
    }

    /// Checks the header and returns the body that follows it.
    pub fn decode(bytes: &[u8], expected: FileType) -> Result<&[u8], FormatError> {
        if bytes.len() < Self::LEN || &bytes[..4] != MAGIC {
            return Err(FormatError::BadMagic);
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion { found: bytes[4], supported: FORMAT_VERSION });
        }
        if bytes[5] != expected as u8 {
            return Err(FormatError::WrongFileType { found: bytes[5], expected: expected.name() });
        }
        if bytes[6] != 0 || bytes[7] != 0 {
            return Err(FormatError::Invalid(format!(
                "{}: header flags {:02x}{:02x} are not defined in format version 1",
                expected.name(),
                bytes[6],
                bytes[7]
            )));
        }
        Ok(&bytes[Self::LEN..])
    }
}

/// The associated data of every AEAD seal: binds the ciphertext to the format version, the
/// file type, and a context naming the object (a blob or frame id, a log sequence number...).
pub fn aad(file_type: FileType, part: &[u8], context: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + part.len() + context.len() + 2);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(file_type as u8);
    out.push(part.len() as u8);
    out.extend_from_slice(part);
    out.extend_from_slice(context);
    out
}

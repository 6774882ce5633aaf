//! The repository config: `config`, sealed with the master key, JSON inside.
//!
//! It fixes what every writer must agree on for deduplication to work (chunking and tree
//! parameters) and lists feature flags in three classes, as ext4 does:
//! `compat` (a reader may ignore an unknown one), `ro_compat` (a reader may read but must not
//! write), `incompat` (a reader must refuse the repository).

use serde::{Deserialize, Serialize};

use super::{FormatError, RepoId};

/// Features this implementation knows, by class. Version 1 defines none.
pub const KNOWN_COMPAT: &[&str] = &[];
pub const KNOWN_RO_COMPAT: &[&str] = &[];
pub const KNOWN_INCOMPAT: &[&str] = &[];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Features {
    #[serde(default)]
    pub compat: Vec<String>,
    #[serde(default)]
    pub ro_compat: Vec<String>,
    #[serde(default)]
    pub incompat: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunking {
    /// Parts larger than this are split with fastcdc; smaller ones are one blob.
    pub threshold: u32,
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packing {
    /// zstd level of frames.
    pub zstd_level: i32,
    /// Target uncompressed size of a data frame.
    pub frame_target: u32,
    /// Target stored size of a pack.
    pub pack_target: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeParams {
    /// Average entries per tree node; boundaries fall where a keyed hash of the key is below
    /// `u32::MAX / fanout` (integer division).
    pub fanout: u32,
    /// A node is closed after this many entries even without a boundary.
    pub max_entries: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    pub id: RepoId,
    pub created: String,
    #[serde(default)]
    pub features: Features,
    pub chunking: Chunking,
    pub packing: Packing,
    pub tree: TreeParams,
}

/// What a reader may do with a repository, given the features its config names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly { unknown: Vec<String> },
}

impl Config {
    pub fn new(id: RepoId, created: String) -> Config {
        Config {
            version: 1,
            id,
            created,
            features: Features::default(),
            chunking: Chunking { threshold: 64 * 1024, min_size: 8 * 1024, avg_size: 16 * 1024, max_size: 64 * 1024 },
            packing: Packing { zstd_level: 15, frame_target: 512 * 1024, pack_target: 16 * 1024 * 1024 },
            tree: TreeParams { fanout: 16, max_entries: 256 },
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes and checks that this implementation may use the repository.
    pub fn decode(bytes: &[u8]) -> Result<(Config, Access), FormatError> {
        let c: Config = serde_json::from_slice(bytes).map_err(|e| FormatError::Invalid(format!("config: {e}")))?;
        if c.version != 1 {
            return Err(FormatError::UnsupportedVersion { found: c.version.min(255) as u8, supported: 1 });
        }
        let unknown_incompat: Vec<_> =
            c.features.incompat.iter().filter(|f| !KNOWN_INCOMPAT.contains(&f.as_str())).cloned().collect();
        if !unknown_incompat.is_empty() {
            return Err(FormatError::Invalid(format!(
                "the repository uses features this kubesnap does not know ({}): upgrade kubesnap",
                unknown_incompat.join(", ")
            )));
        }
        let ch = &c.chunking;
        // fastcdc v2020's own bounds (it checks them only in debug builds).
        if !(64..=1 << 20).contains(&ch.min_size)
            || !(256..=4 << 20).contains(&ch.avg_size)
            || !(1024..=16 << 20).contains(&ch.max_size)
            || ch.min_size > ch.avg_size
            || ch.avg_size > ch.max_size
            || ch.threshold < ch.max_size
        {
            return Err(FormatError::Invalid("config: chunking sizes out of range".into()));
        }
        if c.tree.fanout < 2 || c.tree.max_entries < 2 || c.packing.frame_target == 0 {
            return Err(FormatError::Invalid("config: tree or packing parameters out of range".into()));
        }
        let unknown_ro: Vec<_> =
            c.features.ro_compat.iter().filter(|f| !KNOWN_RO_COMPAT.contains(&f.as_str())).cloned().collect();
        let access = if unknown_ro.is_empty() { Access::ReadWrite } else { Access::ReadOnly { unknown: unknown_ro } };
        Ok((c, access))
    }
}

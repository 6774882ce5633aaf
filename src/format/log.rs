//! The commit log: `log/<seq>` entries (seq as 20 decimal digits), each created once with a
//! conditional create, and `checkpoints/<seq>` summaries of the state after entry `seq`.
//!
//! Entries are sealed JSON whose AEAD context is the sequence number, so an entry cannot be
//! moved to another position; each names the content hash of the entry before it, so the log
//! is a hash chain. The repository's state (which snapshots and index files are live) is the
//! fold of the entries in order.

use serde::{Deserialize, Serialize};

use super::{FormatError, IndexId, PackId, SnapshotId};

/// What a snapshot listing needs, carried in the log so that listing reads no manifests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub id: SnapshotId,
    pub time: String,
    pub cluster: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub objects: u64,
    #[serde(default)]
    pub partial: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct LogEntry {
    pub version: u32,
    pub seq: u64,
    /// Hex content hash of the stored bytes of entry `seq - 1`; None for entry 1.
    pub prev: Option<String>,
    /// Informational wall-clock time of the commit; never used for correctness.
    pub time: String,
    #[serde(default)]
    pub writer: String,
    #[serde(default)]
    pub add_snapshots: Vec<SnapshotSummary>,
    #[serde(default)]
    pub remove_snapshots: Vec<SnapshotId>,
    #[serde(default)]
    pub add_index: Vec<IndexId>,
    #[serde(default)]
    pub remove_index: Vec<IndexId>,
    /// Packs no longer part of the repository from this entry on (prune); absent when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_packs: Vec<PackId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Checkpoint {
    pub version: u32,
    /// The state after applying entries 1..=seq.
    pub seq: u64,
    /// Hex content hash of the stored bytes of entry `seq`.
    pub entry_hash: String,
    pub snapshots: Vec<SnapshotSummary>,
    pub index: Vec<IndexId>,
}

fn check_version(v: u32) -> Result<(), FormatError> {
    if v != 1 {
        return Err(FormatError::UnsupportedVersion { found: v.min(255) as u8, supported: 1 });
    }
    Ok(())
}

impl LogEntry {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<LogEntry, FormatError> {
        let e: LogEntry =
            serde_json::from_slice(bytes).map_err(|e| FormatError::Invalid(format!("commit-log entry: {e}")))?;
        check_version(e.version)?;
        Ok(e)
    }
}

impl Checkpoint {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, FormatError> {
        let c: Checkpoint =
            serde_json::from_slice(bytes).map_err(|e| FormatError::Invalid(format!("checkpoint: {e}")))?;
        check_version(c.version)?;
        Ok(c)
    }
}

/// The object name of log entry `seq`.
pub fn entry_name(seq: u64) -> String {
    format!("log/{seq:020}")
}

/// The object name of the checkpoint after entry `seq`.
pub fn checkpoint_name(seq: u64) -> String {
    format!("checkpoints/{seq:020}")
}

/// The sequence number in a `log/…` or `checkpoints/…` name.
pub fn parse_seq(name: &str) -> Option<u64> {
    let last = name.rsplit('/').next()?;
    if last.len() != 20 || !last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    last.parse().ok()
}

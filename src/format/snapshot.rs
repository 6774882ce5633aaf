//! Snapshot manifests: `snapshots/<id>`, sealed JSON. A manifest becomes visible only when a
//! commit-log entry names it.

use serde::{Deserialize, Serialize};

use super::{BlobId, FormatError, SnapshotId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Roots {
    /// Root of the cluster-scoped hierarchy (level Groups), if any such resource.
    pub cluster: Option<BlobId>,
    /// Root of the namespaced hierarchy (level Namespaces), if any such resource.
    pub namespaces: Option<BlobId>,
}

/// A resource type known to the snapshot (from its CRDs, or a live cluster's discovery), so that
/// names resolve without the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    #[serde(default)]
    pub singular: String,
    #[serde(default)]
    pub short_names: Vec<String>,
    pub namespaced: bool,
    #[serde(default)]
    pub categories: Vec<String>,
    /// "crd" or "discovery".
    pub source: String,
}

/// A resource type the snapshot could not capture completely, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedType {
    pub group: String,
    pub kind: String,
    pub reason: String,
    /// True when some but not all objects were captured.
    #[serde(default)]
    pub partial: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Source {
    /// "dir" or "cluster".
    pub kind: String,
    /// The folder, or the kube context.
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Counts {
    pub added: u64,
    pub modified: u64,
    pub removed: u64,
    /// Stored bytes this snapshot added in packs and index files (the manifest itself and its
    /// commit-log entry, about a kilobyte, are not counted).
    pub bytes_added: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    pub version: u32,
    /// The snapshot's one time (RFC 3339, UTC).
    pub time: String,
    pub cluster: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub hostname: String,
    pub program: String,
    pub source: Source,
    pub roots: Roots,
    pub objects: u64,
    /// Uncompressed bytes of all desired-state parts, and of all server-owned parts.
    pub desired_bytes: u64,
    pub server_bytes: u64,
    #[serde(default)]
    pub parent: Option<SnapshotId>,
    #[serde(default)]
    pub counts: Counts,
    #[serde(default)]
    pub types: Vec<TypeInfo>,
    #[serde(default)]
    pub skipped: Vec<SkippedType>,
    #[serde(default)]
    pub partial: bool,
    /// Free-form facts about the source (server version, kube-system UID, scope, filters...).
    #[serde(default)]
    pub source_info: serde_json::Map<String, serde_json::Value>,
}

impl SnapshotManifest {
    /// Whether the snapshot was taken with `--redact-secrets` (its Secrets hold no values).
    pub fn secrets_redacted(&self) -> bool {
        self.source_info.get("redact_secrets").and_then(serde_json::Value::as_bool).unwrap_or(false)
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<SnapshotManifest, FormatError> {
        let m: SnapshotManifest =
            serde_json::from_slice(bytes).map_err(|e| FormatError::Invalid(format!("snapshot manifest: {e}")))?;
        if m.version != 1 {
            return Err(FormatError::UnsupportedVersion { found: m.version.min(255) as u8, supported: 1 });
        }
        Ok(m)
    }
}

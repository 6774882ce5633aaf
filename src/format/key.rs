//! Key files: `keys/<id>`, plaintext JSON after the file header, holding the master key wrapped
//! by a password through Argon2id. Several key files can open one repository.

use serde::{Deserialize, Serialize};

use super::FormatError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// Always "argon2id" in version 1.
    pub algorithm: String,
    /// Argon2 version, 19 (0x13).
    pub argon2_version: u32,
    /// Memory in KiB.
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
    /// Base64 (standard, padded) of 32 random bytes.
    pub salt: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub created: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub username: String,
    pub kdf: Kdf,
    /// Base64 of the sealed master key (see format-spec: the key envelope).
    pub wrapped: String,
}

impl KeyFile {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<KeyFile, FormatError> {
        let k: KeyFile = serde_json::from_slice(bytes).map_err(|e| FormatError::Invalid(format!("key file: {e}")))?;
        if k.version != 1 {
            return Err(FormatError::UnsupportedVersion { found: k.version.min(255) as u8, supported: 1 });
        }
        if k.kdf.algorithm != "argon2id" || k.kdf.argon2_version != 19 {
            return Err(FormatError::Invalid(format!("key file: unknown KDF {:?}", k.kdf.algorithm)));
        }
        // Bounds that keep a hostile key file from asking for absurd memory or time.
        if k.kdf.m_cost < 8
            || k.kdf.m_cost > 4 * 1024 * 1024
            || k.kdf.t_cost == 0
            || k.kdf.t_cost > 100
            || k.kdf.p_cost == 0
            || k.kdf.p_cost > 64
        {
            return Err(FormatError::Invalid("key file: KDF parameters out of range".into()));
        }
        Ok(k)
    }
}

//! Keys, the encryption envelope, and blob ids.
//!
//! One random 32-byte master secret per repository, wrapped by each password (Argon2id) in a
//! key file. Every other key is derived from it with BLAKE3's `derive_key` and a fixed,
//! versioned context string, so adding a purpose never weakens another:
//!
//! | context | use |
//! |---|---|
//! | `kubesnap 2026-11 v1 blob id` | key of the keyed BLAKE3 that names blobs and frames |
//! | `kubesnap 2026-11 v1 seal` | root of the per-envelope AES-256-GCM keys |
//! | `kubesnap 2026-11 v1 chunker seed` | seed of fastcdc's gear table |
//! | `kubesnap 2026-11 v1 tree boundary` | key of the hash that places tree-node boundaries |
//!
//! The envelope (`seal`): `salt[24] || ciphertext || tag[16]`. The AES-256-GCM key and nonce
//! of each envelope are the first 44 bytes of the keyed BLAKE3 XOF (key: the seal root) of
//! `"kubesnap seal v1" || salt`, with a fresh random salt per envelope. A (key, nonce) pair
//! thus never repeats unless two 192-bit random salts collide: no nonce-reuse risk at any volume,
//! unlike one key with random 96-bit nonces (which must stop near 2^32 messages).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use rand::RngCore;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::format::BlobId;

pub const SALT_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
/// Bytes an envelope adds to its plaintext.
pub const OVERHEAD: usize = SALT_LEN + TAG_LEN;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The ciphertext, its associated data or the key is wrong: nothing is returned.
    #[error("authentication failed")]
    Authentication,
    #[error("envelope too short")]
    TooShort,
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

/// The master secret and the keys derived from it. Zeroed when dropped.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    secret: [u8; 32],
    id_key: [u8; 32],
    seal_key: [u8; 32],
    tree_key: [u8; 32],
    chunker_seed: u64,
}

impl MasterKey {
    pub fn generate() -> MasterKey {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        MasterKey::from_secret(secret)
    }

    pub fn from_secret(secret: [u8; 32]) -> MasterKey {
        let id_key = blake3::derive_key("kubesnap 2026-11 v1 blob id", &secret);
        let seal_key = blake3::derive_key("kubesnap 2026-11 v1 seal", &secret);
        let tree_key = blake3::derive_key("kubesnap 2026-11 v1 tree boundary", &secret);
        let seed = blake3::derive_key("kubesnap 2026-11 v1 chunker seed", &secret);
        let mut s = [0u8; 8];
        s.copy_from_slice(&seed[..8]);
        MasterKey { secret, id_key, seal_key, tree_key, chunker_seed: u64::from_le_bytes(s) }
    }

    pub fn secret(&self) -> &[u8; 32] {
        &self.secret
    }

    pub fn id_key(&self) -> &[u8; 32] {
        &self.id_key
    }

    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// The id of a blob: keyed BLAKE3 of its plaintext. Whoever holds the bucket but not the key
    /// cannot confirm a guess about a blob's content.
    /// 128 bits: the same strength as the GCM tag that authenticates everything else.
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        let h = blake3::keyed_hash(&self.id_key, plaintext);
        let mut id = [0u8; 16];
        id.copy_from_slice(&h.as_bytes()[..16]);
        BlobId(id)
    }

    /// The source tag of an object (see `format::tree::ResourceEntry::source_tag`): 8 bytes of
    /// keyed BLAKE3 over a version string, the source variant (what produced the object and how:
    /// a live cluster, with or without Secret redaction...), the identity, uid and
    /// resourceVersion, each followed by a zero byte.
    pub fn source_tag(&self, variant: &str, identity: [&str; 4], uid: &str, resource_version: &str) -> [u8; 8] {
        let mut h = blake3::Hasher::new_keyed(&self.id_key);
        h.update(b"kubesnap source tag v1\0");
        for part in [variant].into_iter().chain(identity).chain([uid, resource_version]) {
            h.update(part.as_bytes());
            h.update(&[0]);
        }
        let mut t = [0u8; 8];
        t.copy_from_slice(&h.finalize().as_bytes()[..8]);
        t
    }

    /// The 32-bit boundary hash of a tree key (see `repo::tree`).
    pub fn tree_hash(&self, level: u8, key: &[u8]) -> u32 {
        let mut h = blake3::Hasher::new_keyed(&self.tree_key);
        h.update(&[level]);
        h.update(key);
        let out = h.finalize();
        let b = out.as_bytes();
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.seal_key, aad, plaintext)
    }

    pub fn open(&self, aad: &[u8], envelope: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open_with(&self.seal_key, aad, envelope)
    }
}

fn unit_cipher(root: &[u8; 32], salt: &[u8]) -> (Aes256Gcm, [u8; 12]) {
    let mut h = blake3::Hasher::new_keyed(root);
    h.update(b"kubesnap seal v1");
    h.update(salt);
    let mut material = [0u8; 44];
    h.finalize_xof().fill(&mut material);
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&material[32..]);
    // A 32-byte slice is always a valid AES-256 key.
    let cipher = Aes256Gcm::new_from_slice(&material[..32]).unwrap_or_else(|_| unreachable_key());
    material.zeroize();
    (cipher, nonce)
}

#[cold]
fn unreachable_key() -> Aes256Gcm {
    // new_from_slice only fails on a wrong length, and the length is fixed above.
    panic!("AES-256 key of 32 bytes rejected")
}

/// Seals `plaintext` under a root key: `salt[24] || AES-256-GCM(ciphertext || tag)`.
pub fn seal_with(root: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut salt = [0u8; SALT_LEN];
    rand::rng().fill_bytes(&mut salt);
    seal_with_salt(root, &salt, aad, plaintext)
}

/// As [`seal_with`] with a given salt: for test vectors only; real seals use a fresh random salt.
pub fn seal_with_salt(root: &[u8; 32], salt: &[u8; SALT_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let (cipher, nonce) = unit_cipher(root, salt);
    let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
    out.extend_from_slice(salt);
    // Encryption with a valid key cannot fail for inputs below GCM's 64 GiB limit.
    let ct = cipher.encrypt(&nonce.into(), Payload { msg: plaintext, aad }).unwrap_or_default();
    out.extend_from_slice(&ct);
    out
}

pub fn open_with(root: &[u8; 32], aad: &[u8], envelope: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if envelope.len() < OVERHEAD {
        return Err(CryptoError::TooShort);
    }
    let (salt, ct) = envelope.split_at(SALT_LEN);
    let (cipher, nonce) = unit_cipher(root, salt);
    cipher.decrypt(&nonce.into(), Payload { msg: ct, aad }).map_err(|_| CryptoError::Authentication)
}

/// Argon2id parameters, as stored in each key file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    pub m_cost: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// Argon2's recommended defaults (RFC 9106's second recommendation as the argon2 crate
    /// ships it): 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        KdfParams { m_cost: 19 * 1024, t_cost: 2, p_cost: 1 }
    }
}

/// Derives the key-wrapping key from a password.
pub fn password_key(password: &[u8], salt: &[u8], p: KdfParams) -> Result<[u8; 32], CryptoError> {
    let params =
        argon2::Params::new(p.m_cost, p.t_cost, p.p_cost, Some(32)).map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon.hash_password_into(password, salt, &mut out).map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(out)
}

/// The associated data of a wrapped master key.
pub const KEY_WRAP_AAD: &[u8] = b"kubesnap key v1";

/// Wraps the master secret under a password-derived key.
pub fn wrap_master(kek: &[u8; 32], master: &MasterKey) -> Vec<u8> {
    seal_with(kek, KEY_WRAP_AAD, master.secret())
}

pub fn unwrap_master(kek: &[u8; 32], wrapped: &[u8]) -> Result<MasterKey, CryptoError> {
    let mut secret = open_with(kek, KEY_WRAP_AAD, wrapped)?;
    if secret.len() != 32 {
        secret.zeroize();
        return Err(CryptoError::Authentication);
    }
    let mut s = [0u8; 32];
    s.copy_from_slice(&secret);
    secret.zeroize();
    Ok(MasterKey::from_secret(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let k = MasterKey::from_secret([7; 32]);
        let env = k.seal(b"ctx", b"hello");
        assert_eq!(env.len(), 5 + OVERHEAD);
        assert_eq!(k.open(b"ctx", &env).unwrap(), b"hello");
        assert_eq!(k.open(b"other", &env), Err(CryptoError::Authentication));
        for i in 0..env.len() {
            let mut bad = env.clone();
            bad[i] ^= 1;
            assert_eq!(k.open(b"ctx", &bad), Err(CryptoError::Authentication), "flip at {i}");
        }
        let other = MasterKey::from_secret([8; 32]);
        assert_eq!(other.open(b"ctx", &env), Err(CryptoError::Authentication));
    }

    #[test]
    fn wrap_unwrap() {
        let params = KdfParams { m_cost: 8, t_cost: 1, p_cost: 1 };
        let kek = password_key(b"pw", &[1; 32], params).unwrap();
        let m = MasterKey::from_secret([9; 32]);
        let w = wrap_master(&kek, &m);
        assert_eq!(unwrap_master(&kek, &w).unwrap().secret(), m.secret());
        let wrong = password_key(b"pw2", &[1; 32], params).unwrap();
        assert!(unwrap_master(&wrong, &w).is_err());
    }
}

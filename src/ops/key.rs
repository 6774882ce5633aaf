//! `kubesnap key list | add | remove | passwd`: the key files that open the repository.
//!
//! Each key file wraps the one master key under a password (Argon2id, its own parameters), so
//! adding or removing a password never touches data. Removing a key does not revoke what a
//! holder of its password may have learned: the master key. Retiring a leaked master key needs
//! new data keys; format v1 has one master key per repository, so the procedure is to `copy`
//! the snapshots into a new repository (new master key, re-encrypted) and retire the old one
//! (README, "Keys").

use serde::Serialize;

use crate::crypto::KdfParams;
use crate::format::key::KeyFile;
use crate::format::{FileHeader, FileType, KeyId};
use crate::repo::{key_name, Repository};
use crate::{Error, Result};

#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    pub id: KeyId,
    /// The key this process opened the repository with.
    pub current: bool,
    pub created: String,
    pub hostname: String,
    pub username: String,
    pub kdf_memory_kib: u32,
    pub kdf_iterations: u32,
    pub kdf_parallelism: u32,
}

pub fn list(repo: &Repository) -> Result<Vec<KeyInfo>> {
    let mut out = Vec::new();
    for o in repo.backend().list("keys/", None)? {
        let Some(id) = o.name.strip_prefix("keys/").and_then(|h| KeyId::from_hex(h).ok()) else { continue };
        let bytes = repo.backend().get(&o.name)?;
        let body = FileHeader::decode(&bytes, FileType::Key).map_err(|e| Error::from_format("key file", &o.name, e))?;
        let kf = KeyFile::decode(body).map_err(|e| Error::from_format("key file", &o.name, e))?;
        out.push(KeyInfo {
            id,
            current: id == repo.key_id(),
            created: kf.created,
            hostname: kf.hostname,
            username: kf.username,
            kdf_memory_kib: kf.kdf.m_cost,
            kdf_iterations: kf.kdf.t_cost,
            kdf_parallelism: kf.kdf.p_cost,
        });
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

pub fn add(repo: &Repository, password: &[u8], kdf: KdfParams) -> Result<KeyId> {
    if password.is_empty() {
        return Err(Error::Usage("the new password is empty".into()));
    }
    repo.add_key(password, kdf)
}

/// Removes a key file, named by its id or a unique prefix. The last key, and the key in use,
/// are refused (open the repository with another password to remove this one).
pub fn remove(repo: &Repository, name: &str) -> Result<KeyId> {
    let keys = list(repo)?;
    let matching: Vec<&KeyInfo> = keys.iter().filter(|k| k.id.to_hex().starts_with(&name.to_lowercase())).collect();
    let k = match matching.as_slice() {
        [] => return Err(Error::not_found("key", name)),
        [k] => *k,
        _ => return Err(Error::Ambiguous(format!("{name:?} matches {} keys: give more of the id", matching.len()))),
    };
    if keys.len() == 1 {
        return Err(Error::Usage("refusing to remove the last key: the repository could not be opened again".into()));
    }
    if k.current {
        return Err(Error::Usage(
            "refusing to remove the key in use: open the repository with another password to remove it, or use `key passwd`"
                .into(),
        ));
    }
    repo.backend().delete(&key_name(&k.id))?;
    Ok(k.id)
}

/// Replaces the key in use by one for a new password: the new key file is written first, then
/// the old one removed, so that a failure between leaves both, never none.
pub fn passwd(repo: &Repository, new_password: &[u8], kdf: KdfParams) -> Result<KeyId> {
    let id = add(repo, new_password, kdf)?;
    repo.backend().delete(&key_name(&repo.key_id()))?;
    Ok(id)
}

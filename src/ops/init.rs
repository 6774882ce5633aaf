//! `kubesnap init`: create a repository.

use std::sync::Arc;

use crate::backend::Backend;
use crate::crypto::KdfParams;
use crate::format::RepoId;
use crate::repo::Repository;
use crate::Result;

#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Argon2id parameters of the first key file.
    pub kdf: KdfParams,
    /// zstd level of frames (None: the format's default).
    pub zstd_level: Option<i32>,
    /// Target uncompressed size of a frame in bytes (None: the default).
    pub frame_target: Option<u32>,
}

pub fn init(backend: Arc<dyn Backend>, password: &[u8], opts: &InitOptions) -> Result<RepoId> {
    Repository::init(backend, password, opts.kdf, |c| {
        if let Some(l) = opts.zstd_level {
            c.packing.zstd_level = l;
        }
        if let Some(f) = opts.frame_target {
            c.packing.frame_target = f;
        }
    })
}

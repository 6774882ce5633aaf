//! The crate's error.
//!
//! Rules: every public function of the engine returns [`Error`]; modules keep their own
//! `thiserror` enums and map them here. Each variant names a problem a user can act on, and its
//! message is one line saying what is wrong and, where there is one, what to do. Secret values
//! never appear in an error.

use crate::backend::BackendError;
use crate::format::FormatError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no kubesnap repository at {0}: create one with `kubesnap init`, or check --repo / KUBESNAP_REPOSITORY")]
    NoRepository(String),
    #[error("a repository already exists at {0}")]
    RepositoryExists(String),
    #[error("wrong password: none of the repository's {0} key file(s) opens with it")]
    WrongPassword(usize),
    #[error("{what} not found: {name}{hint}")]
    NotFound { what: &'static str, name: String, hint: String },
    #[error("{0}")]
    Ambiguous(String),
    #[error("{what} {id} is corrupt: {detail}")]
    Corrupt { what: String, id: String, detail: String },
    #[error("{0}")]
    UnsupportedFormat(String),
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("{0}")]
    Usage(String),
    #[error("storage: {0}")]
    Backend(#[from] BackendError),
    #[error("local cache: {0} (it can be deleted safely, or bypassed with --no-cache)")]
    Cache(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("could not commit: {0}")]
    Commit(String),
    /// Talking to the Kubernetes API failed (the message names the context and what failed).
    #[error("{0}")]
    Kube(String),
    /// An index file listed as live is gone: another writer merged and removed it.
    #[error("index file {0} vanished while it was read (another writer merged it): run the command again")]
    Vanished(String),
}

impl From<crate::k8s::cluster::KubeError> for Error {
    fn from(e: crate::k8s::cluster::KubeError) -> Error {
        Error::Kube(e.to_string())
    }
}

impl Error {
    pub fn corrupt(what: impl Into<String>, id: impl Into<String>, detail: impl std::fmt::Display) -> Error {
        Error::Corrupt { what: what.into(), id: id.into(), detail: detail.to_string() }
    }

    pub fn not_found(what: &'static str, name: impl Into<String>) -> Error {
        Error::NotFound { what, name: name.into(), hint: String::new() }
    }

    /// A decoding failure of a stored object: corrupt, unless it is a newer format.
    pub fn from_format(what: &str, id: &str, e: FormatError) -> Error {
        match e {
            FormatError::UnsupportedVersion { .. } => Error::UnsupportedFormat(format!("{what} {id}: {e}")),
            other => Error::corrupt(what, id, other),
        }
    }

    /// The process exit code for this error (documented in the README).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Ambiguous(_) => 2,
            Error::NoRepository(_) | Error::RepositoryExists(_) => 3,
            Error::WrongPassword(_) => 4,
            Error::NotFound { .. } => 5,
            Error::Corrupt { .. } => 6,
            Error::InvalidInput(_) => 7,
            Error::UnsupportedFormat(_) => 8,
            Error::Kube(_) => 9,
            Error::Backend(_) | Error::Cache(_) | Error::Io(..) | Error::Commit(_) | Error::Vanished(_) => 1,
        }
    }
}

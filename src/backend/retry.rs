//! Retries and checked transfers, as a decorator over any [`Backend`].
//!
//! Contract added on top of the inner backend's:
//! - a call that fails with [`BackendError::Other`] (a network error, a 5xx, a timeout) is tried
//!   again with exponential backoff, within [`RetryPolicy::attempts`] and
//!   [`RetryPolicy::max_elapsed`]; `NotFound` and `Config` are never retried;
//! - `get_range` returning fewer or more bytes than asked is treated as a failed call (and
//!   retried), never passed up;
//! - every successful `put_new` is checked by reading the object's size back: an upload the store
//!   acknowledged but does not hold is written again; one it holds with another size is an
//!   [`BackendError::Integrity`] error (never retried);
//! - a `put_new` whose first attempt failed and whose retry finds the name taken reads the
//!   object back: if it holds exactly these bytes, the first attempt did succeed and the answer
//!   is `Created::New` (a commit-log entry then is not mistaken for a lost race).
//!
//! object_store's HTTP stores retry requests themselves; this layer adds the checks above and
//! covers every store alike, the local folder included.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Backend, BackendError, Created, ObjectInfo};

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// First wait; doubles each time.
    pub base: Duration,
    /// Longest wait.
    pub max_wait: Duration,
    /// No new attempt starts after this much time in one call.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base: Duration::from_millis(100),
            max_wait: Duration::from_secs(5),
            max_elapsed: Duration::from_secs(60),
        }
    }
}

pub struct RetryBackend {
    inner: Arc<dyn Backend>,
    policy: RetryPolicy,
}

impl RetryBackend {
    pub fn new(inner: Arc<dyn Backend>, policy: RetryPolicy) -> RetryBackend {
        RetryBackend { inner, policy }
    }

    fn run<T>(&self, mut call: impl FnMut() -> Result<T, BackendError>) -> Result<T, BackendError> {
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match call() {
                Err(e @ BackendError::Other { .. })
                    if attempt < self.policy.attempts && started.elapsed() < self.policy.max_elapsed =>
                {
                    let wait = self.policy.base.saturating_mul(1 << (attempt - 1).min(16)).min(self.policy.max_wait);
                    drop(e);
                    std::thread::sleep(wait);
                }
                other => return other,
            }
        }
    }
}

/// Uploads up to this size are verified by reading them back whole.
const VERIFY_WHOLE: usize = 64 * 1024;

fn short(name: &str, want: u64, got: usize) -> BackendError {
    BackendError::Other { name: name.to_owned(), message: format!("short read: asked for {want} bytes, got {got}") }
}

impl Backend for RetryBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn get(&self, name: &str) -> Result<Bytes, BackendError> {
        self.run(|| self.inner.get(name))
    }

    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes, BackendError> {
        let want = range.end.saturating_sub(range.start);
        self.run(|| {
            let b = self.inner.get_range(name, range.clone())?;
            if b.len() as u64 != want {
                return Err(short(name, want, b.len()));
            }
            Ok(b)
        })
    }

    fn get_tail(&self, name: &str, n: u64) -> Result<(Bytes, u64), BackendError> {
        self.run(|| {
            let (b, size) = self.inner.get_tail(name, n)?;
            if (b.len() as u64) < n.min(size) || b.len() as u64 > size {
                return Err(short(name, n.min(size), b.len()));
            }
            Ok((b, size))
        })
    }

    fn put_new(&self, name: &str, bytes: Bytes) -> Result<Created, BackendError> {
        // After any earlier attempt (whatever it answered), a name found taken may hold our
        // own bytes: an upload whose answer or check was lost.
        let mut attempted = false;
        self.run(|| {
            let retrying = attempted;
            attempted = true;
            match self.inner.put_new(name, bytes.clone())? {
                Created::New => {
                    // The store said yes: check that it holds what was sent. Small objects
                    // (commit-log entries, which racing writers fill with different bytes) are
                    // read back whole; larger ones are content-named, so their size suffices.
                    let check = if bytes.len() <= VERIFY_WHOLE {
                        self.inner.get(name).map(|held| (held.len() as u64, held == bytes))
                    } else {
                        self.inner.get_tail(name, 1).map(|(_, size)| (size, size == bytes.len() as u64))
                    };
                    match check {
                        Ok((_, true)) => Ok(Created::New),
                        // Someone else's bytes: our upload was lost and theirs won.
                        Ok((_, false)) if bytes.len() <= VERIFY_WHOLE => Ok(Created::AlreadyExists),
                        // Not retried, and not deleted (in a create-only store another process may
                        // rely on the name): the store is not doing what it says.
                        Ok((size, _)) => Err(BackendError::Integrity(format!(
                            "{name}: the store holds {size} bytes after an upload of {}",
                            bytes.len()
                        ))),
                        Err(BackendError::NotFound(_)) => Err(BackendError::Other {
                            name: name.to_owned(),
                            message: "the store acknowledged an upload it does not hold".into(),
                        }),
                        Err(e) => Err(e),
                    }
                }
                Created::AlreadyExists if retrying => {
                    let held = self.inner.get(name)?;
                    Ok(if held == bytes { Created::New } else { Created::AlreadyExists })
                }
                Created::AlreadyExists => Ok(Created::AlreadyExists),
            }
        })
    }

    fn list(&self, prefix: &str, after: Option<&str>) -> Result<Vec<ObjectInfo>, BackendError> {
        self.run(|| self.inner.list(prefix, after))
    }

    fn delete(&self, name: &str) -> Result<(), BackendError> {
        self.run(|| self.inner.delete(name))
    }
}

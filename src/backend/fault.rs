//! Fault injection, as a decorator over any [`Backend`]: for tests of what kubesnap does when a
//! store misbehaves.
//!
//! Each call counts; a [`Fault`] rule fires on calls of its operations, after `skip` of them,
//! `times` times (or forever). What fires:
//! - `Error`: the call fails with a transient error before reaching the store;
//! - `ErrorAfter`: the call reaches the store (a write is done), then fails: the answer is lost;
//! - `Delay`: the call waits, then proceeds (a slow store);
//! - `DropWrite`: `put_new` answers `Created::New` without writing (a store that loses uploads);
//! - `ShortRead`: `get_range` and `get` return their bytes minus the last one.
//!
//! Lying faults (`DropWrite`, `ShortRead`) must be caught above: by [`super::retry::RetryBackend`]'s
//! checks, or by authentication of what is read.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use super::{Backend, BackendError, Created, ObjectInfo};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Get,
    GetRange,
    GetTail,
    PutNew,
    List,
    Delete,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Error,
    ErrorAfter,
    Delay(Duration),
    DropWrite,
    ShortRead,
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub action: Action,
    /// Operations it applies to (empty: all).
    pub ops: Vec<Op>,
    /// Only names starting with this.
    pub prefix: String,
    /// Matching calls to let through first.
    pub skip: u64,
    /// How many times it fires; None: forever.
    pub times: Option<u64>,
    /// Fire on every n-th matching call only (1: every call).
    pub every: u64,
}

impl Fault {
    pub fn new(action: Action) -> Fault {
        Fault { action, ops: Vec::new(), prefix: String::new(), skip: 0, times: None, every: 1 }
    }
    pub fn on(mut self, ops: &[Op]) -> Fault {
        self.ops = ops.to_vec();
        self
    }
    pub fn under(mut self, prefix: &str) -> Fault {
        self.prefix = prefix.to_owned();
        self
    }
    pub fn skip(mut self, n: u64) -> Fault {
        self.skip = n;
        self
    }
    pub fn times(mut self, n: u64) -> Fault {
        self.times = Some(n);
        self
    }
    pub fn every(mut self, n: u64) -> Fault {
        self.every = n.max(1);
        self
    }
}

struct Rule {
    fault: Fault,
    seen: u64,
    fired: u64,
}

pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    rules: Mutex<Vec<Rule>>,
    fired: AtomicU64,
}

impl FaultyBackend {
    pub fn new(inner: Arc<dyn Backend>) -> FaultyBackend {
        FaultyBackend { inner, rules: Mutex::new(Vec::new()), fired: AtomicU64::new(0) }
    }

    pub fn add(&self, f: Fault) {
        if let Ok(mut r) = self.rules.lock() {
            r.push(Rule { fault: f, seen: 0, fired: 0 });
        }
    }

    pub fn clear(&self) {
        if let Ok(mut r) = self.rules.lock() {
            r.clear();
        }
    }

    /// Faults fired so far.
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }

    fn fire(&self, op: Op, name: &str) -> Option<Action> {
        let mut rules = self.rules.lock().ok()?;
        for r in rules.iter_mut() {
            let f = &r.fault;
            if !(f.ops.is_empty() || f.ops.contains(&op)) || !name.starts_with(&f.prefix) {
                continue;
            }
            r.seen += 1;
            if r.seen <= f.skip || (r.seen - f.skip - 1) % f.every != 0 || f.times.is_some_and(|t| r.fired >= t) {
                continue;
            }
            r.fired += 1;
            self.fired.fetch_add(1, Ordering::Relaxed);
            return Some(f.action);
        }
        None
    }
}

fn injected(name: &str) -> BackendError {
    BackendError::Other { name: name.to_owned(), message: "an injected fault".into() }
}

impl Backend for FaultyBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn get(&self, name: &str) -> Result<Bytes, BackendError> {
        match self.fire(Op::Get, name) {
            Some(Action::Error) => Err(injected(name)),
            Some(Action::ErrorAfter) => self.inner.get(name).and(Err(injected(name))),
            Some(Action::Delay(d)) => {
                std::thread::sleep(d);
                self.inner.get(name)
            }
            Some(Action::ShortRead) => self.inner.get(name).map(|b| b.slice(..b.len().saturating_sub(1))),
            _ => self.inner.get(name),
        }
    }

    fn get_range(&self, name: &str, range: Range<u64>) -> Result<Bytes, BackendError> {
        match self.fire(Op::GetRange, name) {
            Some(Action::Error) => Err(injected(name)),
            Some(Action::ErrorAfter) => self.inner.get_range(name, range).and(Err(injected(name))),
            Some(Action::Delay(d)) => {
                std::thread::sleep(d);
                self.inner.get_range(name, range)
            }
            Some(Action::ShortRead) => self.inner.get_range(name, range).map(|b| b.slice(..b.len().saturating_sub(1))),
            _ => self.inner.get_range(name, range),
        }
    }

    fn get_tail(&self, name: &str, n: u64) -> Result<(Bytes, u64), BackendError> {
        match self.fire(Op::GetTail, name) {
            Some(Action::Error) => Err(injected(name)),
            Some(Action::ErrorAfter) => self.inner.get_tail(name, n).and(Err(injected(name))),
            Some(Action::Delay(d)) => {
                std::thread::sleep(d);
                self.inner.get_tail(name, n)
            }
            _ => self.inner.get_tail(name, n),
        }
    }

    fn put_new(&self, name: &str, bytes: Bytes) -> Result<Created, BackendError> {
        match self.fire(Op::PutNew, name) {
            Some(Action::Error) => Err(injected(name)),
            Some(Action::ErrorAfter) => self.inner.put_new(name, bytes).and(Err(injected(name))),
            Some(Action::Delay(d)) => {
                std::thread::sleep(d);
                self.inner.put_new(name, bytes)
            }
            Some(Action::DropWrite) => Ok(Created::New),
            _ => self.inner.put_new(name, bytes),
        }
    }

    fn list(&self, prefix: &str, after: Option<&str>) -> Result<Vec<ObjectInfo>, BackendError> {
        match self.fire(Op::List, prefix) {
            Some(Action::Error) => Err(injected(prefix)),
            Some(Action::Delay(d)) => {
                std::thread::sleep(d);
                self.inner.list(prefix, after)
            }
            _ => self.inner.list(prefix, after),
        }
    }

    fn delete(&self, name: &str) -> Result<(), BackendError> {
        match self.fire(Op::Delete, name) {
            Some(Action::Error) => Err(injected(name)),
            Some(Action::ErrorAfter) => self.inner.delete(name).and(Err(injected(name))),
            _ => self.inner.delete(name),
        }
    }
}

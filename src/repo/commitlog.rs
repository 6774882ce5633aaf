//! The commit protocol.
//!
//! A snapshot (or any change of state) becomes visible only when a commit-log entry names it.
//! Writers first upload everything the entry will reference (packs, index files, the manifest:
//! all content-named and create-only), then create `log/<seq>` with a conditional create. When
//! two writers race for one `seq`, exactly one wins; the loser reads the new entries and tries
//! the next number. A crash before the entry exists leaves only unreferenced files.
//!
//! Readers fold the entries in order, starting from the newest readable checkpoint. Entries are
//! sealed with their sequence number as AEAD context and chain by content hash (`prev`), so an
//! entry cannot be moved, dropped from the middle, or replaced without detection.

use bytes::Bytes;

use super::Repository;
use crate::backend::{BackendError, Created};
use crate::format::log::{checkpoint_name, entry_name, parse_seq, Checkpoint, LogEntry, SnapshotSummary};
use crate::format::{aad, content_hash, FileHeader, FileType, IndexId, PackId, SnapshotId};
use crate::{Error, Result};

/// A checkpoint is written after this many entries were replayed.
pub const CHECKPOINT_EVERY: u64 = 8;
/// How many times a writer retries after losing a race for a sequence number.
const MAX_ATTEMPTS: usize = 64;

/// The repository's state: the fold of the commit log.
#[derive(Clone, Debug, Default)]
pub struct LogState {
    /// Number of the last entry applied (0: none).
    pub seq: u64,
    /// Content hash of entry `seq`.
    pub head_hash: Option<[u8; 32]>,
    /// Live snapshots in commit order.
    pub snapshots: Vec<SnapshotSummary>,
    /// Live index files in commit order.
    pub index: Vec<IndexId>,
    /// The first missing entry, when later entries exist (the log is damaged there).
    pub gap_at: Option<u64>,
    /// The removals of the entries this process applied, with their sequence numbers: what a
    /// writer checks before it commits (`10-writers-and-prune.md`). Not in checkpoints.
    pub removals: Vec<Removal>,
}

/// What one entry removed.
#[derive(Clone, Debug, Default)]
pub struct Removal {
    pub seq: u64,
    pub snapshots: Vec<SnapshotId>,
    pub index: Vec<IndexId>,
    pub packs: Vec<PackId>,
}

impl LogState {
    /// The removals of entries after `base`.
    pub fn removals_after(&self, base: u64) -> impl Iterator<Item = &Removal> {
        self.removals.iter().filter(move |r| r.seq > base)
    }
}

/// What a commit changes.
#[derive(Clone, Debug, Default)]
pub struct LogChange {
    pub add_snapshots: Vec<SnapshotSummary>,
    pub remove_snapshots: Vec<SnapshotId>,
    pub add_index: Vec<IndexId>,
    pub remove_index: Vec<IndexId>,
    pub remove_packs: Vec<PackId>,
}

impl LogState {
    fn apply(&mut self, e: &LogEntry, hash: [u8; 32]) {
        if !(e.remove_snapshots.is_empty() && e.remove_index.is_empty() && e.remove_packs.is_empty()) {
            self.removals.push(Removal {
                seq: e.seq,
                snapshots: e.remove_snapshots.clone(),
                index: e.remove_index.clone(),
                packs: e.remove_packs.clone(),
            });
        }
        self.snapshots.retain(|s| !e.remove_snapshots.contains(&s.id));
        for s in &e.add_snapshots {
            if !self.snapshots.iter().any(|x| x.id == s.id) {
                self.snapshots.push(s.clone());
            }
        }
        self.index.retain(|i| !e.remove_index.contains(i));
        for i in &e.add_index {
            if !self.index.contains(i) {
                self.index.push(*i);
            }
        }
        self.seq = e.seq;
        self.head_hash = Some(hash);
    }
}

fn seq_context(seq: u64) -> [u8; 8] {
    seq.to_le_bytes()
}

fn read_entry(repo: &Repository, seq: u64) -> Result<(LogEntry, [u8; 32])> {
    let name = entry_name(seq);
    let (plain, hash) = repo.read_sealed_file(&name, FileType::LogEntry, &seq_context(seq), None)?;
    let e = LogEntry::decode(&plain).map_err(|e| Error::from_format("commit-log entry", &name, e))?;
    if e.seq != seq {
        return Err(Error::corrupt("commit-log entry", name, format!("it says it is entry {}", e.seq)));
    }
    Ok((e, hash))
}

/// The state at the newest usable checkpoint (empty when there is none).
fn from_checkpoint(repo: &Repository) -> Result<LogState> {
    let mut names = repo.backend().list("checkpoints/", None).map_err(Error::Backend)?;
    names.sort_by(|a, b| b.name.cmp(&a.name));
    for info in names {
        let Some(seq) = parse_seq(&info.name) else { continue };
        // A damaged checkpoint is skipped: the log itself is the truth.
        let Ok((plain, _)) = repo.read_sealed_file(&info.name, FileType::Checkpoint, &seq_context(seq), None) else {
            continue;
        };
        let Ok(json) = super::unzstd(&plain) else { continue };
        let Ok(c) = Checkpoint::decode(&json) else { continue };
        let mut hash = [0u8; 32];
        if c.seq != seq || hex::decode_to_slice(&c.entry_hash, &mut hash).is_err() {
            continue;
        }
        return Ok(LogState {
            seq,
            head_hash: Some(hash),
            snapshots: c.snapshots,
            index: c.index,
            gap_at: None,
            removals: Vec::new(),
        });
    }
    Ok(LogState::default())
}

/// Folds the entries after `state` into it; returns how many were applied. Reads only; a
/// gap (an entry missing while later ones exist) stops the fold and is recorded in the state.
pub fn fold(repo: &Repository, state: &mut LogState) -> Result<u64> {
    let after = entry_name(state.seq);
    let names = repo.backend().list("log/", Some(&after)).map_err(Error::Backend)?;
    let mut applied = 0;
    state.gap_at = None;
    for info in names {
        let Some(seq) = parse_seq(&info.name) else { continue };
        if seq != state.seq + 1 {
            // Writers only create entry n+1 after reading entry n, so a gap means a missing
            // entry (deleted or lost): what follows cannot be trusted, and no writer may fill it.
            state.gap_at = Some(state.seq + 1);
            break;
        }
        let (entry, hash) = read_entry(repo, seq)?;
        if entry.prev != state.head_hash.map(hex::encode) {
            return Err(Error::corrupt(
                "commit-log entry",
                info.name,
                "it does not chain to the entry before it (the log was altered)",
            ));
        }
        state.apply(&entry, hash);
        applied += 1;
    }
    Ok(applied)
}

/// The repository's state read afresh from the store (checkpoint, then the entries after it).
pub fn read_state(repo: &Repository) -> Result<LogState> {
    let mut state = from_checkpoint(repo)?;
    fold(repo, &mut state)?;
    Ok(state)
}

/// Brings the repository's state up to date; returns how many entries were applied.
pub fn advance(repo: &mut Repository) -> Result<u64> {
    let mut state = if repo.state().seq == 0 { from_checkpoint(repo)? } else { repo.state().clone() };
    let applied = fold(repo, &mut state)?;
    *repo.state_mut() = state;
    Ok(applied)
}

/// Writes the checkpoint of the current state (create-only; another writer may have written
/// the same one first, which is fine).
pub fn write_checkpoint(repo: &Repository) -> Result<()> {
    let st = repo.state();
    let Some(hash) = st.head_hash else { return Ok(()) };
    let c = Checkpoint {
        version: 1,
        seq: st.seq,
        entry_hash: hex::encode(hash),
        snapshots: st.snapshots.clone(),
        index: st.index.clone(),
    };
    let mut bytes = FileHeader::encode(FileType::Checkpoint).to_vec();
    bytes.extend_from_slice(
        &repo.key().seal(&aad(FileType::Checkpoint, b"", &seq_context(st.seq)), &super::zstd_json(&c.encode())),
    );
    repo.backend().put_new(&checkpoint_name(st.seq), Bytes::from(bytes)).map_err(Error::Backend)?;
    Ok(())
}

/// Appends one entry carrying `change`; returns its sequence number. `check` runs on the
/// state brought up to the log's head before every attempt: an error from it commits nothing
/// (a writer whose uploads or reused blobs a concurrent prune removed).
pub fn commit(
    repo: &mut Repository,
    change: LogChange,
    check: &mut dyn FnMut(&Repository) -> Result<()>,
) -> Result<u64> {
    let writer = format!("{}/{}", super::hostname(), std::process::id());
    for _ in 0..MAX_ATTEMPTS {
        advance(repo)?;
        check(repo)?;
        if let Some(gap) = repo.state().gap_at {
            return Err(Error::corrupt(
                "commit log",
                entry_name(gap),
                "it is missing while later entries exist; nothing can be committed after a gap (run `kubesnap check`)",
            ));
        }
        let seq = repo.state().seq + 1;
        let entry = LogEntry {
            version: 1,
            seq,
            prev: repo.state().head_hash.map(hex::encode),
            time: super::now_string(),
            writer: writer.clone(),
            add_snapshots: change.add_snapshots.clone(),
            remove_snapshots: change.remove_snapshots.clone(),
            add_index: change.add_index.clone(),
            remove_index: change.remove_index.clone(),
            remove_packs: change.remove_packs.clone(),
        };
        let mut bytes = FileHeader::encode(FileType::LogEntry).to_vec();
        bytes.extend_from_slice(&repo.key().seal(&aad(FileType::LogEntry, b"", &seq_context(seq)), &entry.encode()));
        let hash = content_hash(&bytes);
        match repo.backend().put_new(&entry_name(seq), Bytes::from(bytes)) {
            Ok(Created::New) => {
                repo.state_mut().apply(&entry, hash);
                if seq % CHECKPOINT_EVERY == 0 {
                    let _ = write_checkpoint(repo);
                }
                return Ok(seq);
            }
            Ok(Created::AlreadyExists) => continue,
            Err(BackendError::NotFound(n)) => return Err(Error::Commit(format!("{n} vanished while committing"))),
            Err(e) => return Err(Error::Backend(e)),
        }
    }
    Err(Error::Commit(format!("lost the race for a commit-log slot {MAX_ATTEMPTS} times; try again")))
}

//! `kubesnap forget`: removes snapshots from the repository's state, by name or by a retention
//! policy ([`super::retention`]). Data stays until `prune`; forgetting only appends a log entry
//! (no delete rights needed), so a scheduled snapshot can apply its own retention.

use chrono::FixedOffset;
use serde::Serialize;

use super::retention::{self, Candidate, Policy};
use super::select;
use crate::format::SnapshotId;
use crate::repo::{LogChange, Repository};
use crate::{timeutil, Error, Result};

#[derive(Clone, Debug)]
pub struct ForgetOptions {
    /// Snapshots to remove by name (ids, prefixes, `latest~N`).
    pub snapshots: Vec<String>,
    pub policy: Policy,
    /// Only this cluster's snapshots.
    pub cluster: Option<String>,
    /// Group by cluster (always) and, with this, by the set of tags too.
    pub group_by_tags: bool,
    pub zone: FixedOffset,
    pub dry_run: bool,
}

impl Default for ForgetOptions {
    fn default() -> Self {
        ForgetOptions {
            snapshots: Vec::new(),
            policy: Policy::default(),
            cluster: None,
            group_by_tags: false,
            zone: FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("zero is a valid offset")),
            dry_run: false,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ForgetRow {
    pub id: SnapshotId,
    pub time: String,
    pub cluster: String,
    pub tags: Vec<String>,
    pub keep: bool,
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ForgetGroup {
    pub cluster: String,
    /// The group's tags, when grouping by tags.
    pub tags: Option<Vec<String>>,
    /// Oldest first.
    pub snapshots: Vec<ForgetRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ForgetReport {
    pub dry_run: bool,
    pub groups: Vec<ForgetGroup>,
    pub removed: Vec<SnapshotId>,
}

pub fn forget(repo: &mut Repository, opts: &ForgetOptions) -> Result<ForgetReport> {
    if opts.snapshots.is_empty() && opts.policy.is_empty() {
        return Err(Error::Usage(
            "name the snapshots to forget, or give a policy (--keep-last, --keep-daily, --keep-within...)".into(),
        ));
    }
    repo.refresh()?;
    let mut removed: Vec<SnapshotId> = Vec::new();
    for name in &opts.snapshots {
        removed.push(select::snapshot(repo, name, opts.cluster.as_deref())?.id);
    }
    let mut groups = Vec::new();
    if !opts.policy.is_empty() {
        let all = select::of_cluster(repo, opts.cluster.as_deref());
        let mut keys: Vec<(String, Option<Vec<String>>)> = Vec::new();
        for s in &all {
            let mut tags = s.tags.clone();
            tags.sort();
            let key = (s.cluster.clone(), opts.group_by_tags.then_some(tags));
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
        keys.sort();
        for (cluster, tags) in keys {
            let members: Vec<_> = all
                .iter()
                .filter(|s| {
                    let mut t = s.tags.clone();
                    t.sort();
                    s.cluster == cluster && tags.as_ref().is_none_or(|g| *g == t)
                })
                .collect();
            let candidates: Vec<Candidate> = members
                .iter()
                .map(|s| Candidate { time: timeutil::parse_stored(&s.time).unwrap_or_default(), tags: s.tags.clone() })
                .collect();
            let decisions = retention::apply(&opts.policy, &candidates, opts.zone);
            let rows: Vec<ForgetRow> = members
                .iter()
                .zip(decisions)
                .map(|(s, d)| ForgetRow {
                    id: s.id,
                    time: s.time.clone(),
                    cluster: s.cluster.clone(),
                    tags: s.tags.clone(),
                    keep: d.keep && !removed.contains(&s.id),
                    reasons: d.reasons,
                })
                .collect();
            removed.extend(rows.iter().filter(|r| !r.keep).map(|r| r.id));
            groups.push(ForgetGroup { cluster, tags, snapshots: rows });
        }
    }
    removed.sort();
    removed.dedup();
    if !opts.dry_run && !removed.is_empty() {
        repo.commit(LogChange { remove_snapshots: removed.clone(), ..Default::default() })?;
    }
    Ok(ForgetReport { dry_run: opts.dry_run, groups, removed })
}

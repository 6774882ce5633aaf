//! Retention policies: which snapshots `forget` keeps, with restic's semantics.
//!
//! Snapshots are grouped (by cluster by default; `--group-by cluster,tags`), and within a group
//! walked from newest to oldest (ties: the later commit is newer). A snapshot is kept when any
//! rule keeps it, and the rules that do are its reasons:
//! - `keep_last N`: the N newest;
//! - `keep_hourly`/`daily`/`weekly`/`monthly`/`yearly N`: the newest snapshot of each of the N
//!   newest hours (days, ISO weeks, months, years) that have a snapshot, in the time zone given
//!   (UTC by default). Buckets without snapshots do not count, so `--keep-daily 7` over a
//!   history with gaps reaches further back than 7 calendar days, as in restic;
//! - `keep_within D`: every snapshot less than D older than the group's newest snapshot
//!   (not than now: a repository that stopped receiving snapshots keeps its last ones);
//! - `keep_tags`: every snapshot carrying one of these tags.
//!
//! `N = -1` means unlimited (every bucket), as restic's `--keep-daily -1`. A policy with no rule
//! keeps everything: forgetting by policy needs at least one rule (the CLI refuses an empty one).
//!
//! Differences from restic: groups are by cluster (restic: host and paths); a time zone is
//! UTC or a fixed offset (restic uses the machine's local zone); `--keep-within-hourly` and
//! friends are not offered.

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use serde::Serialize;

/// How many of each kind to keep; 0 = rule unused, -1 = unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub last: i64,
    pub hourly: i64,
    pub daily: i64,
    pub weekly: i64,
    pub monthly: i64,
    pub yearly: i64,
    /// Seconds.
    pub within: Option<i64>,
    pub tags: Vec<String>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        self.last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.yearly == 0
            && self.within.is_none()
            && self.tags.is_empty()
    }
}

/// One snapshot as the policy sees it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub time: DateTime<Utc>,
    pub tags: Vec<String>,
}

/// The decision for one snapshot (same order as the input).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub keep: bool,
    /// Why it is kept (`last snapshot`, `daily snapshot`, `within 7d`, `tag nightly`...).
    pub reasons: Vec<String>,
}

/// Applies `policy` to one group of snapshots, given oldest first (ties: commit order).
pub fn apply(policy: &Policy, snapshots: &[Candidate], zone: FixedOffset) -> Vec<Decision> {
    let mut out = vec![Decision { keep: false, reasons: Vec::new() }; snapshots.len()];
    if snapshots.is_empty() {
        return out;
    }
    struct Rule {
        name: &'static str,
        count: i64,
        last: Option<i64>,
        bucket: fn(&DateTime<FixedOffset>, usize) -> i64,
    }
    let mut rules = [
        Rule { name: "last", count: policy.last, last: None, bucket: |_, nr| nr as i64 },
        Rule {
            name: "hourly",
            count: policy.hourly,
            last: None,
            bucket: |t, _| {
                t.year() as i64 * 1_000_000 + t.month() as i64 * 10_000 + t.day() as i64 * 100 + t.hour() as i64
            },
        },
        Rule {
            name: "daily",
            count: policy.daily,
            last: None,
            bucket: |t, _| t.year() as i64 * 10_000 + t.month() as i64 * 100 + t.day() as i64,
        },
        Rule {
            name: "weekly",
            count: policy.weekly,
            last: None,
            bucket: |t, _| {
                let w = t.iso_week();
                w.year() as i64 * 100 + w.week() as i64
            },
        },
        Rule {
            name: "monthly",
            count: policy.monthly,
            last: None,
            bucket: |t, _| t.year() as i64 * 100 + t.month() as i64,
        },
        Rule { name: "yearly", count: policy.yearly, last: None, bucket: |t, _| t.year() as i64 },
    ];
    // Newest first; among equal times the later one (commit order) is newer.
    let order: Vec<usize> = (0..snapshots.len()).rev().collect();
    let newest = snapshots.iter().map(|s| s.time).max().unwrap_or_else(Utc::now);
    for (nr, &i) in order.iter().enumerate() {
        let s = &snapshots[i];
        let local = s.time.with_timezone(&zone);
        let d = &mut out[i];
        for t in &policy.tags {
            if s.tags.contains(t) {
                d.reasons.push(format!("tag {t}"));
            }
        }
        if let Some(w) = policy.within {
            if (newest - s.time).num_seconds() < w {
                d.reasons.push(format!("within {}", crate::timeutil::format_age(w)));
            }
        }
        for r in &mut rules {
            if r.count == 0 {
                continue;
            }
            let b = (r.bucket)(&local, nr);
            if r.last != Some(b) {
                r.last = Some(b);
                if r.count > 0 {
                    r.count -= 1;
                }
                d.reasons.push(format!("{} snapshot", r.name));
            }
        }
        d.keep = !d.reasons.is_empty();
    }
    out
}

/// A time zone: `UTC`, or a fixed offset such as `+02:00` / `-0530`.
pub fn parse_zone(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("utc") || s == "Z" {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits[2..].parse().ok()?;
    if h > 23 || m > 59 {
        return None;
    }
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Candidate {
        Candidate { time: crate::timeutil::parse_stored(s).expect(s), tags: Vec::new() }
    }

    fn kept(policy: &Policy, times: &[&str]) -> Vec<usize> {
        let c: Vec<Candidate> = times.iter().map(|t| at(t)).collect();
        apply(policy, &c, FixedOffset::east_opt(0).unwrap())
            .iter()
            .enumerate()
            .filter(|(_, d)| d.keep)
            .map(|(i, _)| i)
            .collect()
    }

    const DAYS: [&str; 8] = [
        "2026-01-01T01:00:00Z", // 0 Thu
        "2026-01-01T23:00:00Z", // 1 Thu (same day, later)
        "2026-01-02T12:00:00Z", // 2 Fri
        "2026-01-04T12:00:00Z", // 3 Sun (a gap on the 3rd)
        "2026-01-05T08:00:00Z", // 4 Mon, ISO week 2
        "2026-01-05T09:00:00Z", // 5 Mon
        "2026-02-01T00:00:00Z", // 6 Feb
        "2027-01-01T00:00:00Z", // 7 next year
    ];

    #[test]
    fn policies_as_restic_applies_them() {
        let p = |f: fn(&mut Policy)| {
            let mut p = Policy::default();
            f(&mut p);
            p
        };
        let cases: Vec<(&str, Policy, Vec<usize>)> = vec![
            ("nothing asked keeps nothing", Policy::default(), vec![]),
            ("last 3", p(|p| p.last = 3), vec![5, 6, 7]),
            ("last more than there are", p(|p| p.last = 20), (0..8).collect()),
            // The newest of each day, days with snapshots counting (the gap on the 3rd is skipped).
            ("daily 4", p(|p| p.daily = 4), vec![3, 5, 6, 7]),
            ("daily 6", p(|p| p.daily = 6), vec![1, 2, 3, 5, 6, 7]),
            ("daily unlimited", p(|p| p.daily = -1), vec![1, 2, 3, 5, 6, 7]),
            ("hourly 8", p(|p| p.hourly = 8), (0..8).collect()),
            // ISO weeks: 2026-W01 holds Jan 1-4, W02 Jan 5.
            ("weekly 3", p(|p| p.weekly = 3), vec![5, 6, 7]),
            ("weekly 4", p(|p| p.weekly = 4), vec![3, 5, 6, 7]),
            ("monthly 2", p(|p| p.monthly = 2), vec![6, 7]),
            ("monthly 3", p(|p| p.monthly = 3), vec![5, 6, 7]),
            ("yearly 5", p(|p| p.yearly = 5), vec![6, 7]),
            (
                "last 1 + daily 2 overlap",
                p(|p| {
                    p.last = 1;
                    p.daily = 2
                }),
                vec![6, 7],
            ),
            // Within is measured from the newest snapshot, not from now.
            ("within 400 days", p(|p| p.within = Some(400 * 86_400)), (0..8).collect()),
            ("within 340 days", p(|p| p.within = Some(340 * 86_400)), vec![6, 7]),
        ];
        for (name, policy, want) in cases {
            assert_eq!(kept(&policy, &DAYS), want, "{name}");
        }
    }

    #[test]
    fn ties_keep_the_later_commit() {
        let same = ["2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z"];
        assert_eq!(kept(&Policy { last: 1, ..Default::default() }, &same), vec![2]);
        assert_eq!(kept(&Policy { daily: 1, ..Default::default() }, &same), vec![2]);
        assert_eq!(kept(&Policy { last: 2, ..Default::default() }, &same), vec![1, 2]);
    }

    #[test]
    fn tags_and_reasons() {
        let mut c: Vec<Candidate> = DAYS[..3].iter().map(|t| at(t)).collect();
        c[0].tags = vec!["release".into()];
        let d = apply(
            &Policy { last: 1, daily: 2, tags: vec!["release".into()], ..Default::default() },
            &c,
            FixedOffset::east_opt(0).unwrap(),
        );
        // 0 and 1 share a day: 1 is that day's newest, 0 is kept only for its tag.
        assert_eq!(d[0].reasons, ["tag release"]);
        assert_eq!(d[1].reasons, ["daily snapshot"]);
        assert_eq!(d[2].reasons, ["last snapshot", "daily snapshot"]);
    }

    #[test]
    fn buckets_follow_the_time_zone() {
        // 23:00 UTC on the 1st and 01:00 UTC on the 2nd: two days in UTC, one at UTC-03:00.
        let times = ["2026-01-01T23:00:00Z", "2026-01-02T01:00:00Z"];
        let c: Vec<Candidate> = times.iter().map(|t| at(t)).collect();
        let daily = Policy { daily: 5, ..Default::default() };
        let n = |z| apply(&daily, &c, z).iter().filter(|d| d.keep).count();
        assert_eq!(n(parse_zone("UTC").unwrap()), 2);
        assert_eq!(n(parse_zone("-03:00").unwrap()), 1);
        assert_eq!(parse_zone("+0530"), FixedOffset::east_opt(5 * 3600 + 1800));
        assert_eq!(parse_zone("Europe/Paris"), None);
        assert_eq!(parse_zone("+25:00"), None);
    }
}

//! Times as users give them and as kubesnap prints them.
//!
//! Input: RFC 3339 (`2026-01-05T10:00:00Z`, `2026-01-05T10:00:00+01:00`), the same without an
//! offset (taken as UTC), a date alone (`2026-01-05`, midnight UTC), or an age (`90m`, `36h`,
//! `7d`, `2w`, `45s`) counted back from now. Output: RFC 3339 in UTC with `Z`.

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, TimeZone, Utc};

use crate::{Error, Result};

pub fn now() -> DateTime<Utc> {
    Utc::now()
}

pub fn format(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses a stored time (written by [`format`]).
pub fn parse_stored(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

pub fn parse_input(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default()));
    }
    if let Some(age) = parse_age(s) {
        return Ok(now - age);
    }
    Err(Error::Usage(format!(
        "cannot read time {s:?}: give RFC 3339 (2026-01-05T10:00:00Z; no offset means UTC) or an age such as 90m, 36h, 7d"
    )))
}

/// Seconds as the largest whole unit that divides them: `7d`, `36h`, `90m`, `45s`.
pub fn format_age(seconds: i64) -> String {
    for (unit, n) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds != 0 && seconds % n == 0 {
            return format!("{}{unit}", seconds / n);
        }
    }
    format!("{seconds}s")
}

/// `90m`, `36h`, `7d`, `2w`, `45s`, or combinations such as `1d12h`.
pub fn parse_age(s: &str) -> Option<chrono::Duration> {
    if s.is_empty() {
        return None;
    }
    let mut total = chrono::Duration::zero();
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().ok()?;
        num.clear();
        let d = match c {
            's' => chrono::Duration::try_seconds(n)?,
            'm' => chrono::Duration::try_minutes(n)?,
            'h' => chrono::Duration::try_hours(n)?,
            'd' => chrono::Duration::try_days(n)?,
            'w' => chrono::Duration::try_weeks(n)?,
            _ => return None,
        };
        total = total.checked_add(&d)?;
    }
    if !num.is_empty() {
        return None;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs() {
        let now = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        let table = [
            ("2026-01-05T10:00:00Z", "2026-01-05T10:00:00Z"),
            ("2026-01-05T10:00:00+01:00", "2026-01-05T09:00:00Z"),
            ("2026-01-05T10:00:00", "2026-01-05T10:00:00Z"),
            ("2026-01-05", "2026-01-05T00:00:00Z"),
            ("90m", "2026-01-10T10:30:00Z"),
            ("36h", "2026-01-09T00:00:00Z"),
            ("7d", "2026-01-03T12:00:00Z"),
            ("1d12h", "2026-01-09T00:00:00Z"),
        ];
        for (input, want) in table {
            assert_eq!(format(&parse_input(input, now).unwrap()), want, "{input}");
        }
        for bad in ["", "yesterday", "7x", "d", "2026-13-01"] {
            assert!(parse_input(bad, now).is_err(), "{bad}");
        }
    }
}

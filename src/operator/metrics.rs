//! The operator's metrics, in Prometheus' text format (version 0.0.4), and the small HTTP
//! server that serves them on `/metrics` (and `/healthz`).
//!
//! Per schedule (labels `namespace`, `schedule`): the last successful snapshot's time,
//! duration, objects and bytes added; counters of runs by result and of failures (failed or
//! partial runs); the nominal interval (the longest gap between two runs). "No successful
//! snapshot in twice the schedule" is then one rule:
//! `time() - kubesnap_schedule_last_success_timestamp_seconds > 2 * kubesnap_schedule_interval_seconds`.
//! Every schedule's series exist from the moment it is seen (counters at 0, the last success at
//! the schedule's creation), so a schedule that never succeeds still alerts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a schedule's status says, to start its series from.
pub struct Seed<'a> {
    /// Its creation (Unix seconds): the last success until there is one.
    pub created: f64,
    /// The runs its status holds.
    pub runs: &'a [super::crd::Run],
}

fn timestamp(s: &Option<String>) -> Option<f64> {
    s.as_deref().and_then(crate::timeutil::parse_stored).map(|t| t.timestamp_millis() as f64 / 1000.0)
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ScheduleMetrics {
    pub last_success_timestamp: f64,
    pub last_duration_seconds: f64,
    pub last_objects: f64,
    pub last_bytes_added: f64,
    pub interval_seconds: f64,
    pub failures_total: u64,
    /// By result: succeeded, partial, failed.
    pub runs_total: BTreeMap<&'static str, u64>,
    /// Jobs already counted (a reconcile that starts from a cached, older status sees a run
    /// again): the latest few hundred.
    counted: std::collections::VecDeque<String>,
}

impl ScheduleMetrics {
    /// A successful run, if it is the newest.
    fn note_success(&mut self, run: &super::crd::Run) {
        if let Some(end) = timestamp(&run.end_time) {
            if end >= self.last_success_timestamp {
                self.last_success_timestamp = end;
                self.last_duration_seconds = timestamp(&run.start_time).map(|s| (end - s).max(0.0)).unwrap_or(0.0);
                self.last_objects = run.objects.unwrap_or(0) as f64;
                self.last_bytes_added = run.bytes_added.unwrap_or(0) as f64;
            }
        }
    }
}

/// Every metric the operator exports.
#[derive(Debug, Default)]
pub struct Metrics {
    schedules: Mutex<BTreeMap<(String, String), ScheduleMetrics>>,
    leader: Mutex<bool>,
}

const RESULTS: [&str; 3] = ["succeeded", "partial", "failed"];

impl Metrics {
    /// Registers a schedule's series (idempotent). The first time, they start from what the
    /// schedule's status says (so a new leader, or a restarted operator, does not forget the
    /// last success and fire a false alert): its newest successful run, else the schedule's
    /// creation; counters start at zero, and the runs already in the status count as seen.
    pub fn observe_schedule(&self, namespace: &str, name: &str, seed: &Seed<'_>, interval: Option<f64>) {
        let mut m = self.schedules.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry((namespace.to_string(), name.to_string())).or_insert_with(|| {
            let mut x = ScheduleMetrics {
                last_success_timestamp: seed.created,
                runs_total: RESULTS.iter().map(|r| (*r, 0)).collect(),
                ..Default::default()
            };
            x.counted.extend(seed.runs.iter().map(|r| r.job_name.clone()));
            if let Some(r) =
                seed.runs.iter().filter(|r| r.result == "Succeeded").max_by(|a, b| a.end_time.cmp(&b.end_time))
            {
                x.note_success(r);
            }
            x
        });
        if let Some(i) = interval {
            e.interval_seconds = i;
        }
    }

    /// Forgets a deleted schedule.
    pub fn remove_schedule(&self, namespace: &str, name: &str) {
        self.schedules.lock().unwrap_or_else(|e| e.into_inner()).remove(&(namespace.to_string(), name.to_string()));
    }

    /// Records one finished run; a Job already counted is not counted again.
    pub fn record_run(&self, namespace: &str, name: &str, run: &super::crd::Run) -> bool {
        let mut m = self.schedules.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry((namespace.to_string(), name.to_string())).or_insert_with(|| ScheduleMetrics {
            runs_total: RESULTS.iter().map(|r| (*r, 0)).collect(),
            ..Default::default()
        });
        if e.counted.contains(&run.job_name) {
            return false;
        }
        e.counted.push_back(run.job_name.clone());
        if e.counted.len() > 512 {
            e.counted.pop_front();
        }
        let result = match run.result.as_str() {
            "Succeeded" => "succeeded",
            "Partial" => "partial",
            _ => "failed",
        };
        *e.runs_total.entry(result).or_default() += 1;
        if result != "succeeded" {
            e.failures_total += 1;
            return true;
        }
        e.note_success(run);
        true
    }

    pub fn set_leader(&self, leader: bool) {
        *self.leader.lock().unwrap_or_else(|e| e.into_inner()) = leader;
    }

    /// Forgets schedules that no longer exist.
    pub fn retain_schedules(&self, keep: impl Fn(&str, &str) -> bool) {
        self.schedules.lock().unwrap_or_else(|e| e.into_inner()).retain(|(ns, name), _| keep(ns, name));
    }

    /// One schedule's metrics (for tests).
    pub fn schedule(&self, namespace: &str, name: &str) -> Option<ScheduleMetrics> {
        self.schedules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let m = self.schedules.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let labels = |ns: &str, s: &str| format!("namespace=\"{}\",schedule=\"{}\"", escape(ns), escape(s));
        type Field = fn(&ScheduleMetrics) -> f64;
        let gauges: [(&str, &str, Field); 5] = [
            (
                "kubesnap_schedule_last_success_timestamp_seconds",
                "Unix time the last successful snapshot ended (the schedule's creation before any).",
                |x| x.last_success_timestamp,
            ),
            ("kubesnap_schedule_last_run_duration_seconds", "Duration of the last successful run.", |x| {
                x.last_duration_seconds
            }),
            ("kubesnap_schedule_last_run_objects", "Objects in the last successful snapshot.", |x| x.last_objects),
            (
                "kubesnap_schedule_last_run_bytes_added",
                "Bytes the last successful snapshot added to the repository.",
                |x| x.last_bytes_added,
            ),
            ("kubesnap_schedule_interval_seconds", "The longest gap between two runs of the schedule.", |x| {
                x.interval_seconds
            }),
        ];
        for (name, help, f) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for ((ns, s), x) in m.iter() {
                let _ = writeln!(out, "{name}{{{}}} {}", labels(ns, s), f(x));
            }
        }
        let _ = writeln!(out, "# HELP kubesnap_schedule_failures_total Runs that failed or were partial.\n# TYPE kubesnap_schedule_failures_total counter");
        for ((ns, s), x) in m.iter() {
            let _ = writeln!(out, "kubesnap_schedule_failures_total{{{}}} {}", labels(ns, s), x.failures_total);
        }
        let _ = writeln!(
            out,
            "# HELP kubesnap_schedule_runs_total Finished runs by result.\n# TYPE kubesnap_schedule_runs_total counter"
        );
        for ((ns, s), x) in m.iter() {
            for (r, n) in &x.runs_total {
                let _ = writeln!(out, "kubesnap_schedule_runs_total{{{},result=\"{r}\"}} {n}", labels(ns, s));
            }
        }
        let leader = *self.leader.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP kubesnap_operator_leader Whether this replica holds the leader lease (1) or waits (0).\n# TYPE kubesnap_operator_leader gauge\nkubesnap_operator_leader {}",
            u8::from(leader)
        );
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Serves `/metrics` and `/healthz` on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: std::sync::Arc<Metrics>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            // The request line and headers; the body (none for GET) is not read.
            while n < buf.len() {
                match tokio::time::timeout(std::time::Duration::from_secs(5), sock.read(&mut buf[n..])).await {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(k)) => {
                        n += k;
                        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("");
            let (status, ctype, body) = match path.split('?').next().unwrap_or("") {
                "/metrics" => ("200 OK", "text/plain; version=0.0.4; charset=utf-8", metrics.render()),
                "/healthz" | "/readyz" => ("200 OK", "text/plain", "ok\n".to_string()),
                _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_exist_from_the_start_and_follow_runs() {
        let m = Metrics::default();
        m.observe_schedule("backups", "nightly", &Seed { created: 1000.0, runs: &[] }, Some(86400.0));
        let text = m.render();
        assert!(
            text.contains(
                "kubesnap_schedule_last_success_timestamp_seconds{namespace=\"backups\",schedule=\"nightly\"} 1000"
            ),
            "{text}"
        );
        assert!(text.contains("kubesnap_schedule_failures_total{namespace=\"backups\",schedule=\"nightly\"} 0"));
        assert!(text
            .contains("kubesnap_schedule_runs_total{namespace=\"backups\",schedule=\"nightly\",result=\"partial\"} 0"));
        assert!(text.contains("kubesnap_schedule_interval_seconds{namespace=\"backups\",schedule=\"nightly\"} 86400"));
        let run = |job: &str, result: &str, start: &str, end: &str| super::super::crd::Run {
            job_name: job.into(),
            start_time: Some(start.into()),
            end_time: Some(end.into()),
            result: result.into(),
            objects: Some(42),
            bytes_added: Some(1234),
            ..Default::default()
        };
        m.record_run("backups", "nightly", &run("j1", "Succeeded", "2026-11-25T02:00:00Z", "2026-11-25T02:00:30Z"));
        m.record_run("backups", "nightly", &run("j2", "Failed", "2026-11-26T02:00:00Z", "2026-11-26T02:00:05Z"));
        m.record_run("backups", "nightly", &run("j3", "Partial", "2026-11-27T02:00:00Z", "2026-11-27T02:00:05Z"));
        // Seen again by a reconcile that started from an older status: not counted twice.
        m.record_run("backups", "nightly", &run("j2", "Failed", "2026-11-26T02:00:00Z", "2026-11-26T02:00:05Z"));
        let s = m.schedule("backups", "nightly").unwrap();
        assert_eq!(s.last_success_timestamp, 1795572030.0);
        assert_eq!((s.last_duration_seconds, s.last_objects, s.last_bytes_added), (30.0, 42.0, 1234.0));
        assert_eq!(s.failures_total, 2);
        assert_eq!(s.runs_total["succeeded"], 1);
        m.set_leader(true);
        assert!(m.render().ends_with("kubesnap_operator_leader 1\n"));
        m.remove_schedule("backups", "nightly");
        assert!(!m.render().contains("nightly"));
        // A restarted operator starts from the status: the last success is not forgotten, and
        // the runs there are not counted again.
        let fresh = Metrics::default();
        let runs = [
            run("j1", "Succeeded", "2026-11-25T02:00:00Z", "2026-11-25T02:00:30Z"),
            run("j2", "Failed", "2026-11-26T02:00:00Z", "2026-11-26T02:00:05Z"),
        ];
        fresh.observe_schedule("backups", "nightly", &Seed { created: 1000.0, runs: &runs }, None);
        assert!(!fresh.record_run("backups", "nightly", &runs[1]));
        let s = fresh.schedule("backups", "nightly").unwrap();
        assert_eq!((s.last_success_timestamp, s.last_objects, s.failures_total), (1795572030.0, 42.0, 0));
    }
}

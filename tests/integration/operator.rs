//! The operator against the test API server, in one process tree: the server runs in the test,
//! `kubesnap operator run` as a child process, and the test plays the kubelet: it runs the
//! Job's command line against the same server and a local repository, then records the pod's
//! termination message and the Job's completion, as the Job controller would.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use kubesnap_testserver::TestServer;
use serde_json::{json, Value};

use super::common::{kubectl, test_server, Env, PASSWORD};

/// A running `kubesnap operator run`, stopped on drop.
struct Operator {
    child: Child,
    metrics: String,
}

impl Operator {
    fn start(kc: &Path, identity: &str, extra: &[&str]) -> Operator {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kubesnap"))
            .args(["operator", "run", "--kubeconfig"])
            .arg(kc)
            .args(["--metrics-addr", "127.0.0.1:0", "--lease-namespace", "backups", "--identity", identity])
            .args(["--image", "ghcr.io/kubesnap/kubesnap:test"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the operator");
        // The first line names the metrics address; the rest is drained in the background.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let first = lines.next().expect("operator output").expect("utf-8");
        let metrics = first.split("http://").nth(1).expect("metrics address").trim().to_string();
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                eprintln!("operator: {l}");
            }
        });
        Operator { child, metrics }
    }

    fn metrics(&self) -> String {
        let addr = self.metrics.trim_end_matches("/metrics");
        let mut s = std::net::TcpStream::connect(addr).expect("connect to /metrics");
        write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        text
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn apply(kc: &Path, dir: &Path, name: &str, yaml: &str) {
    let f = dir.join(name);
    std::fs::write(&f, yaml).unwrap();
    kubectl(kc, &["apply", "-f", f.to_str().unwrap()]);
}

/// Polls until `f` gives something (the operator works asynchronously).
fn eventually<T>(what: &str, f: impl Fn() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn get(server: &TestServer, group: &str, resource: &str, name: &str) -> Option<Value> {
    server.store().get_object(group, resource, Some("backups"), name)
}

fn ready(server: &TestServer, name: &str) -> Option<(String, String)> {
    let s = get(server, "kubesnap.io", "snapshotschedules", name)?;
    let c = s.pointer("/status/conditions/0")?;
    Some((c["status"].as_str()?.to_string(), c["reason"].as_str()?.to_string()))
}

/// Namespace `backups` with the password Secret and a Repository at `repo`; some objects in
/// `shop` to snapshot.
fn install(env: &Env, kc: &Path, repo: &Path) -> PathBuf {
    let dir = env.path("manifests");
    std::fs::create_dir_all(&dir).unwrap();
    let crds = env.ok(&["operator", "crds"]);
    apply(kc, &dir, "crds.yaml", &crds);
    let pw = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
    apply(
        kc,
        &dir,
        "base.yaml",
        &format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: backups\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata:\n  name: kubesnap-password\n  namespace: backups\ntype: Opaque\ndata:\n  password: {pw}\n---\n\
             apiVersion: kubesnap.io/v1alpha1\nkind: Repository\nmetadata:\n  name: main\n  namespace: backups\nspec:\n  url: {}\n  passwordSecretRef:\n    name: kubesnap-password\n    key: password\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n  namespace: shop\ndata:\n  a: b\n---\n\
             apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api\n  namespace: shop\ndata:\n  c: d\n",
            repo.display()
        ),
    );
    dir
}

/// Runs a Job's command as its pod would (its env resolved from the cluster's Secrets, the
/// cluster reached through `kc`), then records the pod and the Job's completion.
fn run_job(env: &Env, server: &TestServer, kc: &Path, job_name: &str) -> (i32, Value) {
    let job = get(server, "batch", "jobs", job_name).expect("the Job");
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["command"], json!(["/usr/local/bin/kubesnap"]), "one command, no shell");
    let report = env.path(&format!("{job_name}.termination-log"));
    let args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().replace("/dev/termination-log", report.to_str().unwrap()))
        .collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubesnap"));
    for (k, _) in std::env::vars() {
        if k.starts_with("KUBESNAP_") {
            cmd.env_remove(k);
        }
    }
    for e in c["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        let value = match (&e["value"], e.pointer("/valueFrom/secretKeyRef")) {
            (Value::String(v), _) => v.clone(),
            (_, Some(r)) => {
                let sec = get(server, "", "secrets", r["name"].as_str().unwrap()).expect("the Secret");
                let b = sec["data"][r["key"].as_str().unwrap()].as_str().unwrap();
                String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).unwrap()).unwrap()
            }
            _ => panic!("unexpected env {e}"),
        };
        let value = match name {
            "KUBESNAP_CACHE_DIR" => env.cache.display().to_string(),
            "HOME" => env.path("home").display().to_string(),
            _ => value,
        };
        cmd.env(name, value);
    }
    let started = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let out = cmd.env("KUBECONFIG", kc).args(&args).output().expect("run the Job's command");
    let code = out.status.code().unwrap_or(-1);
    let message = std::fs::read_to_string(&report).expect("the report file");
    let ended = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let labels = json!({"batch.kubernetes.io/job-name": job_name, "kubesnap.io/schedule": job["metadata"]["labels"]["kubesnap.io/schedule"]});
    server
        .store()
        .put_object(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("{job_name}-x1"), "namespace": "backups", "labels": labels,
                         "annotations": job["spec"]["template"]["metadata"]["annotations"]},
            "spec": job["spec"]["template"]["spec"],
            "status": {"phase": if code == 0 { "Succeeded" } else { "Failed" }, "containerStatuses": [{
                "name": "snapshot", "ready": false, "restartCount": 0, "image": c["image"], "imageID": "",
                "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
                                         "startedAt": started, "finishedAt": ended, "message": message}}}]},
        }))
        .expect("record the pod");
    let mut done = job.clone();
    let condition = if code == 0 { "Complete" } else { "Failed" };
    done["status"] = json!({"startTime": started, "completionTime": ended, "succeeded": u8::from(code == 0), "failed": u8::from(code != 0),
        "conditions": [{"type": condition, "status": "True", "lastTransitionTime": ended}]});
    if code != 0 {
        done["status"].as_object_mut().unwrap().remove("completionTime");
    }
    server.store().put_object(done).expect("complete the Job");
    (code, serde_json::from_str(&message).expect("a JSON report"))
}

#[test]
fn schedules_become_cron_jobs_and_runs_land_in_status_and_metrics() {
    let env = Env::new();
    let (server, kc) = test_server(&env, None, "cluster");
    let dir = install(&env, &kc, &env.repo);
    let op = Operator::start(&kc, "replica-a", &["--allowed-service-account", "snapper"]);

    apply(
        &kc,
        &dir,
        "nightly.yaml",
        "apiVersion: kubesnap.io/v1alpha1\nkind: SnapshotSchedule\nmetadata:\n  name: nightly\n  namespace: backups\nspec:\n  schedule: \"0 2 * * *\"\n  repository: main\n  scope:\n    namespaces: [shop]\n  retention:\n    keepLast: 2\n  job:\n    serviceAccountName: snapper\n",
    );
    let cj = eventually("the CronJob", || get(&server, "batch", "cronjobs", "kubesnap-nightly"));
    let schedule = get(&server, "kubesnap.io", "snapshotschedules", "nightly").unwrap();
    assert_eq!(cj["metadata"]["ownerReferences"][0]["kind"], "SnapshotSchedule");
    assert_eq!(cj["metadata"]["ownerReferences"][0]["uid"], schedule["metadata"]["uid"]);
    assert_eq!(cj["spec"]["schedule"], "0 2 * * *");
    let pod = &cj["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "snapper");
    assert_eq!(pod["containers"][0]["image"], "ghcr.io/kubesnap/kubesnap:test");
    eventually("Ready", || (ready(&server, "nightly")? == ("True".into(), "Scheduled".into())).then_some(()));
    let s = get(&server, "kubesnap.io", "snapshotschedules", "nightly").unwrap();
    assert!(s["status"]["nextRunTime"].as_str().unwrap().ends_with("T02:00:00Z"), "{s}");

    // Edits and suspension reach the CronJob.
    kubectl(
        &kc,
        &[
            "-n",
            "backups",
            "patch",
            "kssched",
            "nightly",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"schedule":"30 3 * * *"}}"#,
        ],
    );
    eventually("the new schedule", || {
        (get(&server, "batch", "cronjobs", "kubesnap-nightly")?["spec"]["schedule"] == "30 3 * * *").then_some(())
    });
    kubectl(
        &kc,
        &["-n", "backups", "patch", "kssched", "nightly", "--type", "merge", "-p", r#"{"spec":{"suspend":true}}"#],
    );
    eventually("suspension", || {
        (get(&server, "batch", "cronjobs", "kubesnap-nightly")?["spec"]["suspend"] == true).then_some(())
    });
    eventually("Suspended", || (ready(&server, "nightly")?.1 == "Suspended").then_some(()));
    kubectl(
        &kc,
        &["-n", "backups", "patch", "kssched", "nightly", "--type", "merge", "-p", r#"{"spec":{"suspend":false}}"#],
    );
    eventually("resumption", || {
        (get(&server, "batch", "cronjobs", "kubesnap-nightly")?["spec"]["suspend"] == false).then_some(())
    });

    // Invalid schedules: a condition that says what is wrong, and no CronJob.
    for (name, spec, reason) in [
        ("broken", "schedule: \"every night\"\n  repository: main", "InvalidSchedule"),
        ("orphan", "schedule: \"@daily\"\n  repository: nope", "RepositoryNotFound"),
        (
            "foreign",
            "schedule: \"@daily\"\n  repository: main\n  job:\n    image: evil.example.com/x",
            "ImageNotAllowed",
        ),
    ] {
        apply(&kc, &dir, &format!("{name}.yaml"), &format!("apiVersion: kubesnap.io/v1alpha1\nkind: SnapshotSchedule\nmetadata:\n  name: {name}\n  namespace: backups\nspec:\n  {spec}\n"));
        let (status, why) = eventually(reason, || ready(&server, name));
        assert_eq!((status.as_str(), why.as_str()), ("False", reason), "{name}");
        assert!(get(&server, "batch", "cronjobs", &format!("kubesnap-{name}")).is_none(), "{name} got a CronJob");
    }
    let orphan = get(&server, "kubesnap.io", "snapshotschedules", "orphan").unwrap();
    assert!(orphan["status"]["conditions"][0]["message"].as_str().unwrap().contains("\"nope\""), "{orphan}");

    // Run now: one Job per annotation value; the test runs it as the kubelet would.
    kubectl(&kc, &["-n", "backups", "annotate", "kssched", "nightly", "kubesnap.io/run-now=first"]);
    let job_name = eventually("the run-now Job", || {
        server
            .store()
            .list_objects("batch", "jobs")
            .into_iter()
            .filter_map(|j| j["metadata"]["name"].as_str().map(str::to_string))
            .find(|n| n.starts_with("kubesnap-nightly-now-"))
    });
    let (code, report) = run_job(&env, &server, &kc, &job_name);
    assert_eq!(code, 0, "{report}");
    let snap_id = report["report"]["id"].as_str().unwrap().to_string();
    let run = eventually("the run in the status", || {
        let s = get(&server, "kubesnap.io", "snapshotschedules", "nightly")?;
        let r = s.pointer("/status/lastRuns/0")?.clone();
        (r["jobName"] == job_name.as_str()).then_some(r)
    });
    assert_eq!((&run["result"], &run["snapshotId"]), (&json!("Succeeded"), &json!(snap_id)));
    // The status and the repository agree.
    let list = env.json(&["snapshots", "list"]);
    let listed = list.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(listed[0]["id"], json!(snap_id));
    assert_eq!(listed[0]["cluster"], "backups-nightly");
    assert_eq!(listed[0]["objects"], run["objects"]);
    assert_eq!(run["objects"], 3, "the shop namespace: its Namespace and two ConfigMaps");
    let s = get(&server, "kubesnap.io", "snapshotschedules", "nightly").unwrap();
    assert_eq!(s["status"]["lastSuccessfulTime"], run["endTime"]);
    // The same annotation value does not run again.
    kubectl(&kc, &["-n", "backups", "annotate", "--overwrite", "kssched", "nightly", "app=x"]);
    std::thread::sleep(Duration::from_millis(500));
    let now_jobs = server
        .store()
        .list_objects("batch", "jobs")
        .into_iter()
        .filter(|j| j["metadata"]["name"].as_str().unwrap().starts_with("kubesnap-nightly-now-"))
        .count();
    assert_eq!(now_jobs, 1);

    // The metrics show the run.
    let text = eventually("the run in the metrics", || {
        let t = op.metrics();
        t.contains("kubesnap_schedule_runs_total{namespace=\"backups\",schedule=\"nightly\",result=\"succeeded\"} 1")
            .then_some(t)
    });
    assert!(
        text.contains("kubesnap_schedule_last_run_objects{namespace=\"backups\",schedule=\"nightly\"} 3"),
        "{text}"
    );
    assert!(text.contains("kubesnap_schedule_failures_total{namespace=\"backups\",schedule=\"nightly\"} 0"), "{text}");
    assert!(
        text.contains("kubesnap_schedule_interval_seconds{namespace=\"backups\",schedule=\"nightly\"} 86400"),
        "{text}"
    );
    assert!(text.contains("kubesnap_schedule_failures_total{namespace=\"backups\",schedule=\"broken\"} 0"), "{text}");
    assert!(text.contains("\nkubesnap_operator_leader 1\n"), "{text}");

    // A failing run: the password Secret changed under the repository.
    let wrong = base64::engine::general_purpose::STANDARD.encode("not the password");
    kubectl(
        &kc,
        &[
            "-n",
            "backups",
            "patch",
            "secret",
            "kubesnap-password",
            "-p",
            &format!("{{\"data\":{{\"password\":\"{wrong}\"}}}}"),
        ],
    );
    kubectl(&kc, &["-n", "backups", "annotate", "--overwrite", "kssched", "nightly", "kubesnap.io/run-now=second"]);
    let second = eventually("the second Job", || {
        server
            .store()
            .list_objects("batch", "jobs")
            .into_iter()
            .filter_map(|j| j["metadata"]["name"].as_str().map(str::to_string))
            .find(|n| n.starts_with("kubesnap-nightly-now-") && *n != job_name)
    });
    let (code, report) = run_job(&env, &server, &kc, &second);
    assert_eq!(code, 4, "{report}");
    let failed = eventually("the failed run", || {
        let s = get(&server, "kubesnap.io", "snapshotschedules", "nightly")?;
        let r = s["status"]["lastRuns"].as_array()?.iter().find(|r| r["jobName"] == second.as_str())?.clone();
        Some(r)
    });
    assert_eq!(failed["result"], "Failed");
    assert!(failed["message"].as_str().unwrap().contains("wrong password"), "{failed}");
    eventually("the failure counted", || {
        op.metrics()
            .contains("kubesnap_schedule_failures_total{namespace=\"backups\",schedule=\"nightly\"} 1")
            .then_some(())
    });

    // A deleted schedule leaves the metrics.
    kubectl(&kc, &["-n", "backups", "delete", "kssched", "broken"]);
    eventually("the deleted schedule's metrics gone", || (!op.metrics().contains("schedule=\"broken\"")).then_some(()));
    drop(op);
    server.stop();
}

#[test]
fn two_replicas_elect_one_leader_and_hand_over() {
    let env = Env::new();
    let (server, kc) = test_server(&env, None, "cluster");
    install(&env, &kc, &env.repo);
    let a = Operator::start(&kc, "replica-a", &["--lease-duration", "2"]);
    eventually("a leads", || a.metrics().contains("\nkubesnap_operator_leader 1\n").then_some(()));
    let b = Operator::start(&kc, "replica-b", &["--lease-duration", "2"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(b.metrics().contains("\nkubesnap_operator_leader 0\n"), "two leaders");
    let lease =
        server.store().get_object("coordination.k8s.io", "leases", Some("backups"), "kubesnap-operator").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-a");
    drop(a);
    eventually("b takes over", || b.metrics().contains("\nkubesnap_operator_leader 1\n").then_some(()));
    let lease =
        server.store().get_object("coordination.k8s.io", "leases", Some("backups"), "kubesnap-operator").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    // The new leader reconciles.
    let dir = env.path("manifests");
    apply(&kc, &dir, "s.yaml", "apiVersion: kubesnap.io/v1alpha1\nkind: SnapshotSchedule\nmetadata:\n  name: hourly\n  namespace: backups\nspec:\n  schedule: \"@hourly\"\n  repository: main\n");
    eventually("the CronJob from b", || get(&server, "batch", "cronjobs", "kubesnap-hourly"));
    server.stop();
}

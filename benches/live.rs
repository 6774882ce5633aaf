//! Live-cluster benchmark (not a test): a test API server in this process, loaded with a
//! cluster; then, each in its own process so that wall time and peak memory are its own:
//! 1. `kubesnap snapshot` of the whole cluster into a new repository;
//! 2. the same again, the cluster unchanged;
//! 3. the kubectl way of dumping (what kube-dump and Stash's KubeDump do): `kubectl get TYPE -A
//!    -o yaml` for every listable type of `kubectl api-resources --verbs=list`, one after the
//!    other;
//! 4. `kubesnap diff latest --live` of the unchanged cluster;
//! 5. `kubesnap restore latest --apply` of the whole snapshot into a second, empty server;
//! 6. the kubectl way of restoring: `kubesnap restore --to-dir --clean`, then `kubectl apply
//!    --server-side -R` of that folder into a third, empty server (what a hand restore of a
//!    KubeDump or Velero-less backup does), counting what it applied and what it refused.
//!
//! ```sh
//! cargo bench --bench live                         # 20,000 objects
//! LIVE_OBJECTS=200000 cargo bench --bench live     # peak memory at 200,000 objects
//! LIVE_SKIP_KUBECTL=1 ...                          # kubesnap only
//! ```
//!
//! The cluster: with `KUBESNAP_CORPUS` set, a `gen-history` day of the shared corpus, its
//! namespaces copied (`-rN` suffixes) until it holds LIVE_OBJECTS objects; without it, the
//! synthetic objects of the scale bench. Results go to stdout and `target/bench-live.json`.
//!
//! Targets (issue: the live-cluster dumper): at least 5x faster than the kubectl way at 20,000
//! objects; peak memory under 500 MiB at 200,000.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use kubesnap_testserver::{Options, TestServer};
use serde_json::{json, Value};

/// `cargo bench` passes --bench; `cargo test --all-targets` runs this as a small smoke test
/// (synthetic objects, no kubectl).
fn is_bench() -> bool {
    std::env::args().any(|a| a == "--bench") || std::env::var_os("LIVE_OBJECTS").is_some()
}

fn target() -> usize {
    let default = if is_bench() { 20_000 } else { 300 };
    std::env::var("LIVE_OBJECTS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Wall seconds and peak RSS (KiB) of a command, through /usr/bin/time.
fn timed(cmd: &mut Command, stdout: Option<&Path>) -> (f64, u64) {
    let stats = std::env::temp_dir().join(format!("kubesnap-bench-time-{}", std::process::id()));
    let mut c = Command::new("/usr/bin/time");
    c.arg("-f").arg("%e %M").arg("-o").arg(&stats).arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(p) = stdout {
        c.stdout(std::fs::File::create(p).expect("output file"));
    } else {
        c.stdout(std::process::Stdio::null());
    }
    let started = Instant::now();
    let status = c.status().expect("run /usr/bin/time");
    let wall = started.elapsed().as_secs_f64();
    // 10 (some resources failed to restore) and 11 (diff --live found differences) are results.
    assert!(status.success() || matches!(status.code(), Some(10 | 11)), "{:?} failed", cmd.get_program());
    // The last line: GNU time writes "Command exited with non-zero status N" before it.
    let text = std::fs::read_to_string(&stats).unwrap_or_default();
    let rss =
        text.lines().last().unwrap_or_default().split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (wall, rss)
}

/// Objects of one gen-history day (as JSON), or None without the corpus.
fn corpus_day(work: &Path) -> Option<Vec<Value>> {
    let corpus = std::env::var_os("KUBESNAP_CORPUS")?;
    let tool = std::env::var_os("KUBESNAP_GEN_HISTORY")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&corpus).join("../../tools/gen-history"));
    let out = work.join("history");
    let status = Command::new("python3")
        .arg(tool)
        .arg("--corpus")
        .arg(&corpus)
        .arg("--out")
        .arg(&out)
        .args(["--days", "1", "--tenants", "4", "--seed", "1"])
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    let day = out.join("day-00");
    let mut objects = Vec::new();
    for rel in kubesnap::k8s::dir::list_files(&day).ok()? {
        let (parsed, _) = kubesnap::k8s::dir::parse_file(&day, &rel);
        objects.extend(parsed.into_iter().map(|o| o.value));
    }
    Some(objects)
}

/// Writes `objects` as a fixtures folder (one JSON `List` file per thousand objects), copying
/// namespaced ones into renamed namespaces until it holds `want` objects, and giving every
/// namespace its Namespace object (so that the cluster restores as a real one would). Returns
/// the count.
fn write_fixtures(dir: &Path, objects: &[Value], want: usize) -> usize {
    std::fs::create_dir_all(dir).expect("mkdir");
    let mut out: Vec<Value> = objects.iter().filter(|o| o.pointer("/metadata/namespace").is_none()).cloned().collect();
    let mut namespaces: std::collections::HashSet<String> = out
        .iter()
        .filter(|o| o["kind"] == "Namespace" && o["apiVersion"] == "v1")
        .filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str).map(str::to_string))
        .collect();
    let namespaced: Vec<&Value> = objects.iter().filter(|o| o.pointer("/metadata/namespace").is_some()).collect();
    let mut round = 0;
    while out.len() < want && !namespaced.is_empty() {
        for o in &namespaced {
            if out.len() >= want {
                break;
            }
            let mut c = (*o).clone();
            if round > 0 {
                let ns = format!("{}-r{round}", c["metadata"]["namespace"].as_str().unwrap_or_default());
                c["metadata"]["namespace"] = json!(ns);
                if let Some(m) = c["metadata"].as_object_mut() {
                    m.remove("uid");
                    m.remove("resourceVersion");
                    m.remove("ownerReferences");
                }
            }
            let ns = c["metadata"]["namespace"].as_str().unwrap_or_default().to_string();
            if namespaces.insert(ns.clone()) {
                out.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
            }
            out.push(c);
        }
        round += 1;
    }
    for (i, chunk) in out.chunks(1000).enumerate() {
        let list = json!({"apiVersion": "v1", "kind": "List", "items": chunk});
        std::fs::write(dir.join(format!("{i:05}.json")), serde_json::to_vec(&list).expect("json")).expect("write");
    }
    out.len()
}

/// The scale bench's synthetic objects, without the corpus.
fn synthetic(want: usize) -> Vec<Value> {
    (0..want)
        .map(|i| {
            let ns = format!("team-{:04}", i / 1000);
            let n = i % 1000;
            match n % 4 {
                0 => json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": format!("app-{n}"), "namespace": ns, "labels": {"app": format!("app-{n}")}},
                    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("app-{n}")}},
                        "template": {"metadata": {"labels": {"app": format!("app-{n}")}}, "spec": {"containers": [{"name": "app",
                            "image": format!("registry.example.com/app-{}:1.{}", n % 50, n % 7), "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}}}),
                1 => json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("config-{n}"), "namespace": ns},
                    "data": {"app.properties": format!("name=config-{n}\nfeature.a=true\n"), "LOG_LEVEL": "info"}}),
                2 => json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc-{n}"), "namespace": ns},
                    "spec": {"selector": {"app": format!("app-{}", n - 2)}, "ports": [{"port": 80, "targetPort": 8080}]}}),
                _ => json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("secret-{n}"), "namespace": ns}, "type": "Opaque",
                    "data": {"password": format!("{:x}", i * 31)}}),
            }
        })
        .collect()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // cargo test --benches asks for a list: nothing to list.
    }
    let want = target();
    let work = tempfile::tempdir().expect("tempdir");
    let source = if is_bench() { corpus_day(work.path()) } else { None };
    let (objects, what) = match source {
        Some(o) => (o, "gen-history day (tenants 4) copied into more namespaces"),
        None => (synthetic(want), "synthetic"),
    };
    let fixtures = work.path().join("fixtures");
    let written = write_fixtures(&fixtures, &objects, want);
    drop(objects);
    let server = TestServer::start(Options {
        fixtures: Some(fixtures),
        default_namespaces: true,
        compaction_interval: None,
        serve_openapi: false,
        ..Options::default()
    })
    .expect("server");
    let loaded = written;
    let kc = work.path().join("kubeconfig");
    server.write_kubeconfig(&kc).expect("kubeconfig");
    println!("cluster: {loaded} objects ({what})");

    let exe = env!("CARGO_BIN_EXE_kubesnap");
    let repo = work.path().join("repo");
    let ks = |args: &[&str]| {
        let mut c = Command::new(exe);
        c.env("KUBESNAP_PASSWORD", "bench")
            .env("KUBESNAP_CACHE_DIR", work.path().join("cache"))
            .arg("-r")
            .arg(&repo)
            .args(args);
        c
    };
    assert!(ks(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]).status().expect("init").success());
    let kcs = kc.to_str().expect("utf-8");
    let (first, first_rss) = timed(&mut ks(&["snapshot", "--kubeconfig", kcs, "-q"]), None);
    let (second, second_rss) = timed(&mut ks(&["snapshot", "--kubeconfig", kcs, "-q"]), None);
    println!("kubesnap snapshot:            {first:8.2} s  peak {:6} MiB", first_rss / 1024);
    println!("kubesnap snapshot, unchanged: {second:8.2} s  peak {:6} MiB", second_rss / 1024);

    let mut result = json!({
        "objects": loaded, "source": what,
        "kubesnap_first_s": first, "kubesnap_first_peak_kib": first_rss,
        "kubesnap_unchanged_s": second, "kubesnap_unchanged_peak_kib": second_rss,
    });
    if is_bench() && std::env::var_os("LIVE_SKIP_KUBECTL").is_none() {
        let dump = work.path().join("kubectl-dump");
        std::fs::create_dir_all(&dump).expect("mkdir");
        let started = Instant::now();
        let types = Command::new("kubectl")
            .args(["--kubeconfig", kcs, "api-resources", "--verbs=list", "-o", "name"])
            .output()
            .expect("kubectl api-resources");
        let mut count = 0;
        for t in String::from_utf8_lossy(&types.stdout).lines() {
            let mut c = Command::new("kubectl");
            c.args(["--kubeconfig", kcs, "get", t, "-A", "-o", "yaml"]);
            let out = std::fs::File::create(dump.join(format!("{t}.yaml"))).expect("file");
            let ok = c.stdout(out).stderr(std::process::Stdio::null()).status().map(|s| s.success()).unwrap_or(false);
            count += usize::from(ok);
        }
        let kubectl = started.elapsed().as_secs_f64();
        println!("kubectl get -A -o yaml x {count} types: {kubectl:8.2} s");
        println!("ratio kubectl / kubesnap:     {:8.2}x", kubectl / first);
        result["kubectl_s"] = json!(kubectl);
        result["kubectl_types"] = json!(count);
        result["ratio_kubectl_over_kubesnap"] = json!(kubectl / first);
    }

    let (diff_live, diff_rss) = timed(
        &mut ks(&["diff", "latest", "--live", "--kubeconfig", kcs, "-q", "--json"]),
        Some(&work.path().join("diff.json")),
    );
    println!("kubesnap diff --live:         {diff_live:8.2} s  peak {:6} MiB", diff_rss / 1024);
    result["diff_live_s"] = json!(diff_live);
    result["diff_live_peak_kib"] = json!(diff_rss);
    server.stop();

    let empty = || {
        TestServer::start(Options {
            default_namespaces: true,
            compaction_interval: None,
            serve_openapi: true,
            ..Options::default()
        })
        .expect("server")
    };
    let target = empty();
    let kc2 = work.path().join("kubeconfig-restore");
    target.write_kubeconfig(&kc2).expect("kubeconfig");
    let report_path = work.path().join("restore.json");
    let (restore, restore_rss) = timed(
        &mut ks(&["restore", "latest", "--apply", "--kubeconfig", kc2.to_str().expect("utf-8"), "-q", "--json"]),
        Some(&report_path),
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap_or_default()).unwrap_or(Value::Null);
    let counts = report["counts"].clone();
    println!("kubesnap restore --apply:     {restore:8.2} s  peak {:6} MiB  {counts}", restore_rss / 1024);
    result["restore_apply_s"] = json!(restore);
    result["restore_apply_peak_kib"] = json!(restore_rss);
    result["restore_apply_counts"] = counts;
    target.stop();

    if is_bench() && std::env::var_os("LIVE_SKIP_KUBECTL").is_none() {
        let target = empty();
        let kc3 = work.path().join("kubeconfig-kubectl");
        target.write_kubeconfig(&kc3).expect("kubeconfig");
        let clean = work.path().join("clean");
        let started = Instant::now();
        let ok = ks(&["restore", "latest", "--to-dir", clean.to_str().expect("utf-8"), "--clean", "-q"]).status();
        assert!(ok.map(|s| s.success()).unwrap_or(false), "restore --to-dir --clean");
        let out = Command::new("kubectl")
            .args([
                "--kubeconfig",
                kc3.to_str().expect("utf-8"),
                "apply",
                "--server-side",
                "--force-conflicts",
                "-R",
                "-f",
            ])
            .arg(&clean)
            .output()
            .expect("kubectl apply");
        let kubectl = started.elapsed().as_secs_f64();
        let applied =
            String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.ends_with("serverside-applied")).count();
        let refused = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter(|l| l.starts_with("error") || l.starts_with("Error"))
            .count();
        println!("kubectl apply --server-side -R: {kubectl:6.2} s  applied {applied}, refused {refused}");
        result["kubectl_apply_s"] = json!(kubectl);
        result["kubectl_apply_applied"] = json!(applied);
        result["kubectl_apply_refused"] = json!(refused);
        target.stop();
    }
    if is_bench() {
        let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-live.json");
        let _ = std::fs::write(&out, serde_json::to_string_pretty(&result).unwrap_or_default());
    }
    println!("{}", serde_json::to_string_pretty(&result).unwrap_or_default());
}

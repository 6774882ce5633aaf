//! Scale benchmark (not a test): a synthetic cluster of SCALE_OBJECTS objects (default
//! 1,000,000, generated in code) snapshotted twice with 1% changed, then a diff of the two and
//! a one-resource restore with a cold cache. Prints each phase's wall time and peak memory
//! (each phase runs in its own process, so peak RSS is per phase).
//!
//!     cargo bench --bench scale                       # 1M objects (a few minutes)
//!     SCALE_OBJECTS=100000 cargo bench --bench scale  # quicker
//!
//! The last phase forgets the first snapshot and prunes: prune's time and peak memory over a
//! repository of about two million blobs (issue: object stores, prune).
//!
//! Targets (issue: the engine measured): peak RSS under 1 GiB; the second snapshot at least 3x
//! faster than the first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use kubesnap::backend::{Backend, ObjectStoreBackend};
use kubesnap::crypto::KdfParams;
use kubesnap::ops::snapshot::{SnapshotMeta, SnapshotWriter};
use kubesnap::repo::{OpenOptions, Repository};
use serde_json::{json, Value};

const PER_NAMESPACE: usize = 1000;

fn object(i: usize, generation: u32) -> Value {
    let ns = format!("team-{:04}", i / PER_NAMESPACE);
    let n = i % PER_NAMESPACE;
    // 1% of objects change between generations 0 and 1.
    let changed = generation > 0 && i % 100 == 7;
    let version = if changed { generation } else { 0 };
    let uid = format!("{:08x}-0000-4000-8000-{:012x}", i, i * 7919);
    // As an API server does, a changed object gets a new resourceVersion.
    let rv = (1000 + i + version as usize * 10_000_000).to_string();
    match n % 4 {
        0 => {
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": format!("app-{n}"), "namespace": ns, "uid": uid,
            "resourceVersion": rv, "labels": {"app": format!("app-{n}"), "tier": "web"}},
            "spec": {"replicas": 2 + (n % 3), "selector": {"matchLabels": {"app": format!("app-{n}")}},
                "template": {"metadata": {"labels": {"app": format!("app-{n}")}}, "spec": {"containers": [{"name": "app",
                    "image": format!("registry.example.com/app-{}:1.{}.{}", n % 50, n % 7, version), "ports": [{"containerPort": 8080}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}},
            "status": {"readyReplicas": 2, "observedGeneration": 1}})
        }
        1 => {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("config-{n}"), "namespace": ns, "uid": uid,
            "resourceVersion": rv},
            "data": {"app.properties": format!("name=config-{n}\nrevision={version}\nfeature.a=true\nfeature.b=false\n"), "LOG_LEVEL": "info"}})
        }
        2 => {
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": format!("svc-{n}"), "namespace": ns, "uid": uid,
            "resourceVersion": rv},
            "spec": {"selector": {"app": format!("app-{}", n - 2)}, "ports": [{"port": 80 + version, "targetPort": 8080}], "clusterIP": format!("10.{}.{}.{}", i % 250, n % 250, n % 7)}})
        }
        _ => {
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("secret-{n}"), "namespace": ns, "uid": uid,
            "resourceVersion": rv}, "type": "Opaque",
            "data": {"password": format!("{:x}{:x}", i * 31 + version as usize, i * 17)}})
        }
    }
}

fn backend(dir: &Path) -> Arc<dyn Backend> {
    Arc::new(ObjectStoreBackend::local(&dir.join("repo")).expect("local repository"))
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn phase(dir: &Path, name: &str, objects: usize) {
    let opts = OpenOptions { cache_dir: Some(dir.join("cache")), no_cache: false };
    match name {
        "snapshot0" | "snapshot1" => {
            let generation = u32::from(name == "snapshot1");
            if generation == 0 {
                Repository::init(backend(dir), b"bench", KdfParams::default(), |_| {}).expect("init");
            }
            let mut repo = Repository::open(backend(dir), b"bench", &opts).expect("open");
            // Objects carry a uid and resourceVersion, as from a live cluster: unchanged ones are
            // reused from the previous snapshot by their source tag.
            let mut w = SnapshotWriter::new().with_source_tags("synthetic");
            let t0 = Instant::now();
            if let Some(parent) = repo.snapshots().last() {
                let m = repo.load_manifest(&parent.id).expect("parent manifest");
                w.reuse_unchanged_from(&repo, &m.roots).expect("parent tree");
            }
            let reading_parent = t0.elapsed();
            // The generator stands in for the API server: its time is reported apart.
            let mut generating = std::time::Duration::ZERO;
            for i in 0..objects {
                let t = Instant::now();
                let o = object(i, generation);
                generating += t.elapsed();
                w.add_value(&repo, i as u64, o).expect("store").expect("valid object");
            }
            let meta = SnapshotMeta {
                cluster: "scale".into(),
                time: chrono::Utc::now(),
                source: kubesnap::format::snapshot::Source {
                    kind: "synthetic".into(),
                    name: format!("{objects} objects"),
                },
                ..Default::default()
            };
            let t1 = Instant::now();
            let r = w.commit(&mut repo, meta, &|o| format!("object {o}")).expect("commit");
            eprintln!(
                "  reading the previous snapshot {:.2} s, objects {:.2} s, commit {:.2} s",
                reading_parent.as_secs_f64(),
                (t1 - t0 - reading_parent).as_secs_f64(),
                t1.elapsed().as_secs_f64()
            );
            eprintln!(
                "  {}: {} objects, +{} -{} ~{}, {} bytes added",
                name, r.objects, r.added, r.removed, r.modified, r.bytes_added
            );
            println!("generating_s={}", generating.as_secs_f64());
        }
        "diff" => {
            let repo = Repository::open(backend(dir), b"bench", &opts).expect("open");
            let s = repo.snapshots();
            let d = kubesnap::ops::diff::diff(&repo, &s[0].id, &s[1].id, &Default::default()).expect("diff");
            eprintln!("  diff: {} added, {} removed, {} modified", d.added.len(), d.removed.len(), d.modified.len());
        }
        "restore" => {
            let cold = OpenOptions { cache_dir: None, no_cache: true };
            let repo = Repository::open(backend(dir), b"bench", &cold).expect("open");
            let last = repo.snapshots().last().expect("a snapshot").id;
            let ns = format!("team-{:04}", objects / PER_NAMESPACE / 2);
            let opts = kubesnap::ops::restore::RestoreOptions {
                clean: None,
                resources: vec!["deploy/app-500".into()],
                filter: kubesnap::ops::select::Filter { namespace: Some(ns), kind: None },
                server_fields: false,
                output: kubesnap::ops::restore::Output::Stdout,
            };
            let mut out = Vec::new();
            kubesnap::ops::restore::restore(&repo, &last, &opts, &mut out).expect("restore");
            let (reads, bytes, _) = repo.io_counts();
            eprintln!("  restore: {} bytes of YAML, {reads} stored objects read ({bytes} bytes)", out.len());
        }
        "prune" => {
            // Forget the first snapshot, then prune: the 1% of objects it alone held go (whole
            // frames of them are rare: most packs are repacked or kept).
            let mut repo = Repository::open(backend(dir), b"bench", &opts).expect("open");
            let first = repo.snapshots()[0].id;
            repo.commit(kubesnap::repo::LogChange { remove_snapshots: vec![first], ..Default::default() })
                .expect("forget");
            let mut blobs = 0u64;
            repo.index()
                .for_each_entry(&repo, |_, _, _| {
                    blobs += 1;
                    Ok(())
                })
                .expect("index");
            let r = kubesnap::ops::prune::prune(
                &mut repo,
                &kubesnap::ops::prune::PruneOptions { leftover_age: std::time::Duration::ZERO, ..Default::default() },
                &kubesnap::ops::NoProgress,
            )
            .expect("prune");
            eprintln!(
                "  prune over {blobs} blobs: {} unreferenced, {} packs removed, {} repacked, {} bytes removed, {} written",
                r.blobs_unreferenced, r.packs_removed, r.packs_repacked, r.bytes_removed, r.bytes_written
            );
        }
        other => panic!("unknown phase {other}"),
    }
    println!("peak_rss_kib={}", peak_rss_kib());
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this as a smoke test, small.
    let bench = args.iter().any(|a| a == "--bench") || std::env::var_os("SCALE_OBJECTS").is_some();
    let default = if bench { 1_000_000 } else { 2_000 };
    let objects: usize = std::env::var("SCALE_OBJECTS").ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    if args.len() >= 4 && args[1] == "phase" {
        phase(Path::new(&args[2]), &args[3], objects);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return; // cargo bench probing
    }
    let dir: PathBuf =
        std::env::var_os("SCALE_DIR").map(PathBuf::from).unwrap_or_else(|| std::env::temp_dir().join("kubesnap-scale"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    println!("scale: {objects} objects in {}", dir.display());
    let mut times = Vec::new();
    for name in ["snapshot0", "snapshot1", "diff", "restore", "prune"] {
        let start = Instant::now();
        let out = std::process::Command::new(&args[0])
            .args(["phase", dir.to_str().expect("utf-8"), name])
            .env("SCALE_OBJECTS", objects.to_string())
            .output()
            .expect("run phase");
        let secs = start.elapsed().as_secs_f64();
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "phase {name} failed");
        let rss = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("peak_rss_kib=").map(str::to_owned))
            .unwrap_or_default();
        let mib = rss.parse::<f64>().unwrap_or(0.0) / 1024.0;
        let generating: f64 = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("generating_s=").and_then(|v| v.parse().ok()))
            .unwrap_or(0.0);
        if generating > 0.0 {
            println!("{name:<10} {secs:>8.2} s   peak RSS {mib:>7.1} MiB   (of which {generating:.2} s generating objects; kubesnap {:.2} s)", secs - generating);
        } else {
            println!("{name:<10} {secs:>8.2} s   peak RSS {mib:>7.1} MiB");
        }
        times.push(secs - generating);
    }
    println!(
        "second snapshot {:.1}x faster than the first (kubesnap's time, without generating objects)",
        times[0] / times[1]
    );
    let size: u64 = walk(&dir.join("repo"));
    println!("repository: {:.1} MiB", size as f64 / (1 << 20) as f64);
    let _ = std::fs::remove_dir_all(&dir);
}

fn walk(p: &Path) -> u64 {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata().map(|m| (m.is_dir(), m.len())).unwrap_or((false, 0));
            n += if m.0 { walk(&e.path()) } else { m.1 };
        }
    }
    n
}

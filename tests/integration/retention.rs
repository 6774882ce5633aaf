//! forget and prune: policies through the CLI, space reclaimed, leftovers, the commit-time
//! check against a concurrent prune, and concurrent writers with a prune loop.

use std::sync::Arc;

use kubesnap::backend::{Backend, ObjectStoreBackend};
use kubesnap::crypto::KdfParams;
use kubesnap::ops::prune::{prune, PruneOptions};
use kubesnap::ops::snapshot::{snapshot_dir, SnapshotMeta, SnapshotOptions, SnapshotWriter};
use kubesnap::ops::NoProgress;
use kubesnap::repo::{LogChange, OpenOptions, Repository};
use serde_json::json;

use super::common::{synthetic_cluster, write, Env};

fn ids(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn forget_by_policy_then_prune_reclaims_space_and_keeps_the_rest_whole() {
    let env = Env::new();
    let src = env.path("src");
    let mut made = Vec::new();
    for (i, time) in ["2026-01-01T10:00:00Z", "2026-01-01T20:00:00Z", "2026-01-02T10:00:00Z", "2026-01-03T10:00:00Z"]
        .iter()
        .enumerate()
    {
        synthetic_cluster(&src, i as u32);
        // A large object that only this day has: forgetting the day frees it.
        write(
            &src,
            "big.yaml",
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\n  namespace: shop\ndata:\n  blob: \"{}\"\n",
                format!("{i}-").repeat(40_000)
            ),
        );
        made.push(env.snapshot(&src, time, &[]));
    }
    let other = env.snapshot(&src, "2026-01-01T00:00:00Z", &["--cluster", "other"]);
    // A dry run changes nothing and says why each is kept.
    let dry = env.json(&["forget", "--keep-daily", "2", "--cluster", "default", "--dry-run"]);
    assert_eq!(dry["forget"]["removed"].as_array().unwrap().len(), 2, "{dry}");
    assert_eq!(ids(&env.json(&["snapshots", "list"])).len(), 5);
    let rows = &dry["forget"]["groups"][0]["snapshots"];
    assert_eq!(rows[3]["reasons"], json!(["daily snapshot"]));
    assert_eq!(rows[0]["keep"], false);

    let before = env.json(&["stats"]);
    let r = env.json(&["forget", "--keep-daily", "2", "--cluster", "default", "--prune", "--leftover-age", "0s"]);
    let removed: Vec<String> =
        r["forget"]["removed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(removed, {
        let mut v = vec![made[0].clone(), made[1].clone()];
        v.sort();
        v
    });
    let left = ids(&env.json(&["snapshots", "list"]));
    assert_eq!(left.len(), 3);
    assert!(left.contains(&other) && left.contains(&made[2]) && left.contains(&made[3]));
    assert!(r["prune"]["bytes_removed"].as_u64().unwrap() > 0, "{r}");
    let after = env.json(&["stats"]);
    assert!(after["stored_bytes"].as_u64() < before["stored_bytes"].as_u64(), "{before}\n{after}");
    // What is left is whole, every byte.
    assert_eq!(env.json(&["check", "--read-data"])["errors"], json!([]));
    let out = env.path("out");
    env.ok(&["restore", &made[2], "--to-dir", out.to_str().unwrap()]);
    assert!(std::fs::read_to_string(out.join("namespaces/shop/ConfigMap.core/big.yaml")).unwrap().contains("2-2-2-"));
    // A second prune finds nothing to do.
    let again = env.json(&["prune", "--leftover-age", "0s"]);
    assert_eq!((again["packs_removed"].as_u64(), again["bytes_removed"].as_u64()), (Some(0), Some(0)), "{again}");
}

#[test]
fn forget_needs_names_or_a_policy_and_snapshot_applies_retention() {
    let env = Env::new();
    let src = env.path("src");
    synthetic_cluster(&src, 0);
    let (code, err) = env.fail(&["forget"]);
    assert_eq!(code, 2, "{err}");
    for (i, t) in ["2026-02-01T00:00:00Z", "2026-02-02T00:00:00Z", "2026-02-03T00:00:00Z"].iter().enumerate() {
        synthetic_cluster(&src, i as u32);
        env.snapshot(&src, t, &["--keep-last", "2"]);
    }
    assert_eq!(ids(&env.json(&["snapshots", "list"])).len(), 2);
    let first = ids(&env.json(&["snapshots", "list"]))[0].clone();
    env.ok(&["forget", &first]);
    assert_eq!(ids(&env.json(&["snapshots", "list"])).len(), 1);
}

const CHEAP: KdfParams = KdfParams { m_cost: 64, t_cost: 1, p_cost: 1 };

fn open(backend: &Arc<dyn Backend>) -> Repository {
    Repository::open(backend.clone(), b"pw", &OpenOptions { no_cache: true, ..Default::default() }).unwrap()
}

#[test]
fn a_writer_whose_reused_data_a_prune_removed_commits_nothing() {
    let d = tempfile::tempdir().unwrap();
    let backend: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(&d.path().join("repo")).unwrap());
    Repository::init(backend.clone(), b"pw", CHEAP, |_| {}).unwrap();
    let src = d.path().join("src");
    synthetic_cluster(&src, 0);
    let mut a = open(&backend);
    snapshot_dir(&mut a, &SnapshotOptions { from_dir: src.clone(), ..Default::default() }, &NoProgress).unwrap();
    // A writer starts and reuses what that snapshot stored.
    let mut w = open(&backend);
    let mut writer = SnapshotWriter::new();
    // An object the snapshot holds, exactly: its blobs are found stored, not uploaded again.
    let (objs, _) =
        kubesnap::k8s::dir::parse_file(&src, std::path::Path::new("namespaces/shop/Widget.example.com/gizmo.yaml"));
    let obj = objs.into_iter().next().expect("gizmo").value;
    writer.add_value(&w, 0, obj.clone()).unwrap().unwrap();
    // Meanwhile the snapshot is forgotten and pruned: every pack goes.
    let mut p = open(&backend);
    let snaps: Vec<_> = p.snapshots().iter().map(|s| s.id).collect();
    p.commit(LogChange { remove_snapshots: snaps, ..Default::default() }).unwrap();
    let r = prune(&mut p, &PruneOptions { leftover_age: std::time::Duration::ZERO, ..Default::default() }, &NoProgress)
        .unwrap();
    assert!(r.packs_removed > 0, "{r:?}");
    let meta = SnapshotMeta { cluster: "c".into(), time: chrono::Utc::now(), ..Default::default() };
    let err = writer.commit(&mut w, meta, &|_| String::new()).unwrap_err();
    assert!(err.to_string().contains("prune"), "{err}");
    // Nothing was committed, and the repository is sound.
    let fresh = open(&backend);
    assert!(fresh.snapshots().is_empty());
    let check = kubesnap::ops::check::check(&fresh, &Default::default(), &NoProgress).unwrap();
    assert!(check.errors.is_empty(), "{:?}", check.errors);
    // The same writer's work done again after the prune commits fine.
    let mut w2 = open(&backend);
    let mut writer = SnapshotWriter::new();
    writer.add_value(&w2, 0, obj).unwrap().unwrap();
    let meta = SnapshotMeta { cluster: "c".into(), time: chrono::Utc::now(), ..Default::default() };
    writer.commit(&mut w2, meta, &|_| String::new()).unwrap();
}

/// Several snapshot processes and a forget --prune loop at once, some killed: every snapshot
/// that reported success restores, and the repository checks clean.
#[test]
fn concurrent_writers_and_prune_lose_nothing() {
    torture(&Env::new(), std::time::Duration::from_secs(20));
}

/// The sources the writers snapshot: four gen-history days (each writer its own day, as
/// clusters of one fleet) when the corpus is there, else four synthetic clusters.
fn torture_sources(env: &Env) -> Vec<std::path::PathBuf> {
    if let Some(corpus) = super::common::corpus("torture") {
        let hist = env.path("hist");
        let truth = super::common::gen_history(&corpus, &hist, 4, 1, 11);
        return truth.as_array().unwrap().iter().map(|d| hist.join(d["dir"].as_str().unwrap())).collect();
    }
    (0..4u32)
        .map(|i| {
            let s = env.path(&format!("src{i}"));
            synthetic_cluster(&s, i);
            write(
                &s,
                "own.yaml",
                &format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: own-{i}\n  namespace: shop\ndata:\n  v: \"{}\"\n",
                    "x".repeat(5000 + i as usize)
                ),
            );
            s
        })
        .collect()
}

fn torture(env: &Env, duration: std::time::Duration) {
    let srcs = torture_sources(env);
    let deadline = std::time::Instant::now() + duration;
    let mut succeeded: Vec<(String, usize)> = Vec::new();
    let mut round = 0usize;
    while std::time::Instant::now() < deadline {
        round += 1;
        let mut children = Vec::new();
        for (i, s) in srcs.iter().enumerate() {
            let c = env
                .cmd(&[
                    "snapshot",
                    "--from-dir",
                    s.to_str().unwrap(),
                    "--cluster",
                    &format!("c{i}"),
                    "--json",
                    "-q",
                    "--keep-last",
                    "2",
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            children.push((c, i));
        }
        let mut pruner = env
            .cmd(&["forget", "--keep-last", "1", "--prune", "--leftover-age", "0s", "-q"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Kill -9 one of them (a writer, or the pruner) now and then, at a varying moment.
        if round % 2 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(15 * (round as u64 % 9)));
            let n = children.len();
            let victim = (round / 2) % (n + 1);
            if victim == n {
                let _ = pruner.kill();
            } else {
                let _ = children[victim].0.kill();
            }
        }
        for (c, i) in children {
            let out = c.wait_with_output().unwrap();
            if out.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                succeeded.push((v["id"].as_str().unwrap().to_string(), i));
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(!err.contains("panicked"), "{err}");
            }
        }
        let p = pruner.wait_with_output().unwrap();
        assert!(!String::from_utf8_lossy(&p.stderr).contains("panicked"));
    }
    eprintln!("torture: {} snapshots reported success over {round} rounds", succeeded.len());
    assert!(!succeeded.is_empty());
    // Every snapshot still listed restores completely; those forgotten by policy are gone by
    // design, never half there.
    let live = ids(&env.json(&["snapshots", "list"]));
    for (id, i) in &succeeded {
        if !live.contains(id) {
            continue;
        }
        let out = env.path(&format!("restore-{}", &id[..8]));
        env.ok(&["restore", id, "--to-dir", out.to_str().unwrap()]);
        // Completely: one file per object the snapshot recorded.
        let objects = env.json(&["snapshots", "show", id])["objects"].as_u64().unwrap();
        assert_eq!(count_files(&out), objects, "snapshot {id} restored partly");
        let _ = i;
    }
    assert_eq!(env.json(&["check", "--read-data"])["errors"], json!([]));
    env.ok(&["prune", "--leftover-age", "0s"]);
    let check = env.json(&["check", "--read-data"]);
    assert_eq!(check["errors"], json!([]));
    // Once leftovers are old enough, nothing unreferenced is left: no leftover files, no pack
    // without a referenced blob.
    assert_eq!(check["warnings"], json!([]), "{check}");
    let again = env.json(&["prune", "--dry-run", "--leftover-age", "0s"]);
    assert_eq!(again["packs_removed"], 0, "{again}");
    assert_eq!(again["leftover_packs"], 0, "{again}");
}

/// The same, against the S3-compatible server (credentials and endpoint from the environment,
/// as a user sets them).
#[test]
fn concurrent_writers_and_prune_lose_nothing_on_s3() {
    let Some(s3) = super::backend::s3_env() else {
        eprintln!("concurrent_writers_and_prune_lose_nothing_on_s3: skipped: KUBESNAP_TEST_S3 is not set");
        return;
    };
    let env = Env::at(&super::backend::s3_url("torture"), s3);
    torture(&env, std::time::Duration::from_secs(25));
}

fn count_files(dir: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        n += if p.is_dir() { count_files(&p) } else { 1 };
    }
    n
}

//! Damaged repositories and killed writers: `check` names the damage, unaffected resources
//! still restore, and a killed `snapshot` leaves the repository sound.

use std::path::{Path, PathBuf};

use super::common::{synthetic_cluster, write, Env};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn flip_byte(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    let i = at.min(b.len() - 1);
    b[i] ^= 0x40;
    // Stored files are read-only for some backends: rewrite through a fresh file.
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, b).unwrap();
}

/// A repository with two snapshots, each of one big object in its own pack, plus small objects.
fn repo_with_separate_packs() -> Env {
    let env = Env::new();
    let a = env.path("a");
    synthetic_cluster(&a, 0);
    env.snapshot(&a, "2026-01-01T00:00:00Z", &[]);
    let b = env.path("b");
    write(
        &b,
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: only-in-b\n  namespace: other\ndata:\n  k: v\n",
    );
    env.snapshot(&b, "2026-01-02T00:00:00Z", &[]);
    env
}

#[test]
fn one_flipped_byte_in_a_pack_is_found_and_other_data_still_restores() {
    let env = repo_with_separate_packs();
    let packs = files_under(&env.repo.join("data"));
    assert_eq!(packs.len(), 2, "one data pack per snapshot");
    // Damage the first snapshot's pack (the bigger one), in the middle of its frames.
    let victim = packs.iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap().clone();
    let len = std::fs::metadata(&victim).unwrap().len() as usize;
    flip_byte(&victim, len / 3);
    let name = victim.file_name().unwrap().to_str().unwrap().to_owned();
    let out = env.run(&["check", "--read-data"]);
    assert_eq!(out.status.code(), Some(6));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&name) && text.contains("corrupt"), "{text}");
    // Resources in the other pack still restore (with a fresh cache too).
    let ok = env.ok(&["restore", "latest", "cm/only-in-b", "-n", "other", "--stdout", "--no-cache"]);
    assert!(ok.contains("only-in-b"));
    // A resource in the damaged frame fails with one clear line naming the pack.
    let (code, err) = env.fail(&["restore", "latest~1", "--stdout", "--no-cache"]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains(&name), "{err}");
}

#[test]
fn a_truncated_pack_and_a_damaged_index_are_named() {
    let env = repo_with_separate_packs();
    let packs = files_under(&env.repo.join("data"));
    let victim = packs.iter().min_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap().clone();
    let bytes = std::fs::read(&victim).unwrap();
    std::fs::remove_file(&victim).unwrap();
    std::fs::write(&victim, &bytes[..bytes.len() - 5]).unwrap();
    let out = env.run(&["check", "--no-cache"]);
    assert_eq!(out.status.code(), Some(6));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(victim.file_name().unwrap().to_str().unwrap()), "{text}");

    let env = repo_with_separate_packs();
    let index = files_under(&env.repo.join("index"));
    let victim = index[0].clone();
    flip_byte(&victim, 20);
    let out = env.run(&["check", "--no-cache"]);
    assert_eq!(out.status.code(), Some(6));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("index file") && text.contains(victim.file_name().unwrap().to_str().unwrap()), "{text}");
}

#[test]
fn a_damaged_snapshot_manifest_is_named_and_others_restore() {
    let env = repo_with_separate_packs();
    let list = env.json(&["snapshots", "list"]);
    let first = list[0]["id"].as_str().unwrap().to_owned();
    flip_byte(&env.repo.join("snapshots").join(&first), 40);
    let out = env.run(&["check", "--no-cache"]);
    assert_eq!(out.status.code(), Some(6));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&first[..8]) || text.contains(&first), "{text}");
    let (code, err) = env.fail(&["ls", &first, "--no-cache"]);
    assert_eq!(code, 6);
    assert!(err.contains("snapshot manifest") && err.contains(&first), "{err}");
    env.ok(&["restore", "latest", "cm/only-in-b", "-n", "other", "--stdout", "--no-cache"]);
}

#[test]
fn a_damaged_cache_is_ignored() {
    let env = repo_with_separate_packs();
    env.ok(&["ls", "latest"]);
    for f in files_under(&env.cache) {
        if f.extension().is_some_and(|e| e == "sqlite") {
            std::fs::write(&f, b"garbage garbage garbage garbage").unwrap();
        }
    }
    let out = env.ok(&["restore", "latest", "cm/only-in-b", "-n", "other", "--stdout"]);
    assert!(out.contains("only-in-b"));
}

#[test]
fn killed_snapshots_leave_the_repository_sound() {
    let env = Env::new();
    let big = env.path("big");
    // Enough objects that a snapshot takes a while in a debug build.
    for i in 0..3000 {
        write(
            &big,
            &format!("ns{}/cm{i}.yaml", i % 20),
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: ns-{}\ndata:\n  value: \"{}\"\n  filler: \"{}\"\n", i % 20, i * 7919, "x".repeat(i % 400)),
        );
    }
    let small = env.path("small");
    synthetic_cluster(&small, 0);
    env.snapshot(&small, "2026-01-01T00:00:00Z", &[]);
    let mut killed = 0;
    for delay_ms in [5u64, 30, 80, 150, 250, 400, 700] {
        let mut child = env
            .cmd(&["snapshot", "--from-dir", big.to_str().unwrap(), "-q"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
        }
        let _ = child.wait();
        let check = env.json(&["check", "--read-data"]);
        assert_eq!(check["errors"], serde_json::json!([]), "after a kill at {delay_ms} ms: {check}");
    }
    assert!(killed >= 3, "the snapshot finished too fast to be killed ({killed} kills)");
    // The next snapshot works and everything restores.
    env.snapshot(&big, "2026-01-03T00:00:00Z", &[]);
    let out = env.path("out");
    env.ok(&["restore", "latest", "--to-dir", out.to_str().unwrap()]);
    assert_eq!(files_under(&out).len(), 3000);
    let check = env.json(&["check", "--read-data"]);
    assert_eq!(check["errors"], serde_json::json!([]));
}

//! The storage commands through the CLI: keys, rewrite, copy, check subsets, and a whole
//! round trip on the S3-compatible server.

use serde_json::json;

use super::common::{synthetic_cluster, write, Env};

fn ids(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn keys_are_added_changed_and_removed_but_never_the_last() {
    let env = Env::new();
    let keys = env.json(&["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["current"], true);
    let (code, err) = env.fail(&["key", "remove", &keys[0]["id"].as_str().unwrap()[..8]]);
    assert_eq!(code, 2, "{err}");
    // A second password opens the repository too.
    let added = env
        .cmd(&["key", "add", "--kdf-memory", "64", "--kdf-iterations", "1", "--json"])
        .env("KUBESNAP_NEW_PASSWORD", "second")
        .output()
        .unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let second = env.cmd(&["key", "list", "--json"]).env("KUBESNAP_PASSWORD", "second").output().unwrap();
    let second: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(second.as_array().unwrap().len(), 2);
    // The key in use cannot be removed; the other can.
    let first_id = keys[0]["id"].as_str().unwrap().to_string();
    let out = env.cmd(&["key", "remove", &first_id]).env("KUBESNAP_PASSWORD", "second").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (code, _) = env.fail(&["key", "list"]);
    assert_eq!(code, 4, "the first password no longer opens it");
    // passwd replaces the key in use.
    let out = env
        .cmd(&["key", "passwd", "--kdf-memory", "64", "--kdf-iterations", "1"])
        .env("KUBESNAP_PASSWORD", "second")
        .env("KUBESNAP_NEW_PASSWORD", "third")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let third = env.cmd(&["key", "list", "--json"]).env("KUBESNAP_PASSWORD", "third").output().unwrap();
    assert!(third.status.success());
    let gone = env.cmd(&["key", "list"]).env("KUBESNAP_PASSWORD", "second").output().unwrap();
    assert_eq!(gone.status.code(), Some(4));
}

#[test]
fn a_leaked_secret_is_rewritten_out_of_history_and_pruned() {
    let env = Env::new();
    let src = env.path("src");
    synthetic_cluster(&src, 0);
    write(&src, "leak.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: leaked\n  namespace: shop\ntype: Opaque\ndata:\n  token: TEVBS0VEVE9LRU4xMjM0NQ==\n");
    let a = env.snapshot(&src, "2026-03-01T00:00:00Z", &[]);
    synthetic_cluster(&src, 1);
    let b = env.snapshot(&src, "2026-03-02T00:00:00Z", &[]);
    let dry = env.json(&["rewrite", "--exclude", "secret/leaked", "-n", "shop", "--dry-run"]);
    assert_eq!(dry["rewritten"].as_array().unwrap().len(), 2);
    assert_eq!(ids(&env.json(&["snapshots", "list"])), vec![a.clone(), b.clone()], "a dry run changes nothing");
    let r = env.json(&["rewrite", "--exclude", "secret/leaked", "-n", "shop"]);
    assert_eq!(r["rewritten"][0]["removed"][0]["name"], "leaked");
    let now = ids(&env.json(&["snapshots", "list"]));
    assert_eq!(now.len(), 2);
    assert!(!now.contains(&a) && !now.contains(&b));
    for id in &now {
        let ls = env.json(&["ls", id]);
        assert!(!ls.as_array().unwrap().iter().any(|r| r["name"] == "leaked"));
        let show = env.json(&["snapshots", "show", id]);
        assert!(show["source_info"]["rewritten_from"].is_string());
    }
    // The diff between the two rewritten snapshots is what it was, less the secret.
    let d = env.json(&["diff", &now[0], &now[1]]);
    assert!(!d["modified"].as_array().unwrap().is_empty());
    env.ok(&["prune", "--leftover-age", "0s"]);
    assert_eq!(env.json(&["check", "--read-data"])["errors"], json!([]));
    // The secret's bytes are gone from the store: no blob holds them any more (checked by
    // restoring every snapshot and by the stats of referenced data).
    for id in &now {
        let out = env.path(&format!("r{}", &id[..6]));
        env.ok(&["restore", id, "--to-dir", out.to_str().unwrap()]);
        assert!(!out.join("namespaces/shop/Secret.core/leaked.yaml").exists());
    }
    let (code, err) = env.fail(&["rewrite", "--exclude", "nosuchtype/x"]);
    assert_eq!(code, 5, "{err}");
}

#[test]
fn copy_moves_history_between_repositories_once() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..3u32 {
        synthetic_cluster(&src, i);
        env.snapshot(&src, &format!("2026-04-0{}T00:00:00Z", i + 1), &[]);
    }
    let dst = Env::new();
    let to = dst.repo.to_str().unwrap().to_string();
    let run = |env: &Env| {
        let out = env
            .cmd(&["copy", "--to", &to, "--json"])
            .env("KUBESNAP_TO_PASSWORD", super::common::PASSWORD)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = run(&env);
    assert_eq!(first["copied"].as_array().unwrap().len(), 3);
    assert_eq!(first["skipped"], 0);
    let again = run(&env);
    assert_eq!(again["skipped"], 3, "{again}");
    // The copies hold the same resources, field for field.
    let a = ids(&env.json(&["snapshots", "list"]));
    let b = ids(&dst.json(&["snapshots", "list"]));
    assert_eq!(b.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        let ox = env.path(&format!("x{}", &x[..6]));
        let oy = dst.path(&format!("y{}", &y[..6]));
        env.ok(&["restore", x, "--to-dir", ox.to_str().unwrap(), "--server-fields"]);
        dst.ok(&["restore", y, "--to-dir", oy.to_str().unwrap(), "--server-fields"]);
        let (same, report) = super::common::oracle_compare(&ox, &oy, false);
        assert!(same, "{report}");
    }
    assert_eq!(dst.json(&["diff", &b[0], &b[2]]), env.json(&["diff", &a[0], &a[2]]));
}

#[test]
fn check_reads_a_subset_of_packs() {
    let env = Env::new();
    let src = env.path("src");
    for i in 0..4u32 {
        synthetic_cluster(&src, i);
        env.snapshot(&src, &format!("2026-05-0{}T00:00:00Z", i + 1), &[]);
    }
    let full = env.json(&["check", "--read-data"]);
    let packs = full["packs"].as_u64().unwrap();
    assert_eq!(full["packs_read"].as_u64(), Some(packs));
    let parts: u64 = (1..=3)
        .map(|k| env.json(&["check", "--read-data-subset", &format!("{k}/3")])["packs_read"].as_u64().unwrap())
        .sum();
    assert_eq!(parts, packs, "parts 1/3..3/3 read every pack once");
    let none = env.json(&["check"]);
    assert_eq!(none["packs_read"].as_u64(), Some(0));
    let (code, _) = env.fail(&["check", "--read-data-subset", "0%"]);
    assert_eq!(code, 2);
}

#[test]
fn a_repository_on_s3_works_end_to_end() {
    let Some(s3) = super::backend::s3_env() else {
        eprintln!("a_repository_on_s3_works_end_to_end: skipped: KUBESNAP_TEST_S3 is not set");
        return;
    };
    end_to_end(&Env::at(&super::backend::s3_url("cli"), s3));
}

#[test]
fn a_repository_on_azure_works_end_to_end() {
    if std::env::var_os("KUBESNAP_TEST_AZURE").is_none() {
        eprintln!("a_repository_on_azure_works_end_to_end: skipped: KUBESNAP_TEST_AZURE is not set");
        return;
    }
    let url = super::backend::s3_url("cli").replacen("s3://", "az://", 1);
    end_to_end(&Env::at(&url, vec![("AZURE_STORAGE_USE_EMULATOR".to_string(), "true".to_string())]));
}

fn end_to_end(env: &Env) {
    let src = env.path("src");
    synthetic_cluster(&src, 0);
    let a = env.snapshot(&src, "2026-06-01T00:00:00Z", &[]);
    synthetic_cluster(&src, 1);
    let b = env.snapshot(&src, "2026-06-02T00:00:00Z", &[]);
    assert!(!env.json(&["diff", &a, &b])["modified"].as_array().unwrap().is_empty());
    let out = env.path("out");
    env.ok(&["restore", &b, "--to-dir", out.to_str().unwrap()]);
    env.ok(&["forget", "--keep-last", "1", "--prune", "--leftover-age", "0s"]);
    assert_eq!(env.json(&["check", "--read-data"])["errors"], json!([]));
    assert_eq!(ids(&env.json(&["snapshots", "list"])), vec![b]);
}

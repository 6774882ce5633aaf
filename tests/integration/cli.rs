//! The CLI contract on synthetic clusters: outputs, JSON shapes, errors and exit codes.

use serde_json::Value;

use super::common::{idents, synthetic_cluster, write, Env};

fn two_snapshots(env: &Env) -> (String, String) {
    let d0 = env.path("d0");
    let d1 = env.path("d1");
    synthetic_cluster(&d0, 0);
    synthetic_cluster(&d1, 1);
    let a = env.snapshot(&d0, "2026-01-01T00:00:00Z", &[]);
    let b = env.snapshot(&d1, "2026-01-02T00:00:00Z", &[]);
    (a, b)
}

#[test]
fn snapshot_json_and_listing() {
    let env = Env::new();
    let d0 = env.path("d0");
    synthetic_cluster(&d0, 0);
    let v = env.json(&[
        "snapshot",
        "--from-dir",
        d0.to_str().unwrap(),
        "--time",
        "2026-01-01T10:00:00+02:00",
        "--tag",
        "daily",
        "--cluster",
        "prod",
    ]);
    assert_eq!(v["time"], "2026-01-01T08:00:00Z");
    assert_eq!(v["cluster"], "prod");
    assert_eq!(v["objects"], 14);
    assert_eq!((v["added"].as_u64(), v["modified"].as_u64(), v["removed"].as_u64()), (Some(14), Some(0), Some(0)));
    assert!(v["bytes_added"].as_u64().unwrap() > 0);
    let list = env.json(&["snapshots", "list"]);
    let s = &list.as_array().unwrap()[0];
    for k in ["id", "time", "cluster", "tags", "objects"] {
        assert!(s.get(k).is_some(), "snapshots list --json lacks {k}: {s}");
    }
    assert_eq!(s["tags"], serde_json::json!(["daily"]));
    assert_eq!(env.json(&["snapshots", "list", "--tag", "weekly"]), serde_json::json!([]));
    // The same folder again: nothing changed, almost nothing stored.
    let again = env.json(&["snapshot", "--from-dir", d0.to_str().unwrap(), "--cluster", "prod"]);
    assert_eq!(
        (again["added"].as_u64(), again["modified"].as_u64(), again["removed"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
    assert!(again["bytes_added"].as_u64().unwrap() < v["bytes_added"].as_u64().unwrap() / 4);
    let show = env.ok(&["snapshots", "show", "latest"]);
    assert!(show.contains("cluster   prod") && show.contains("objects   14"), "{show}");
}

#[test]
fn ls_filters_and_json_refs() {
    let env = Env::new();
    let (_, _) = two_snapshots(&env);
    let all = env.json(&["ls", "latest"]);
    assert_eq!(all.as_array().unwrap().len(), 14);
    let first = &all[0];
    assert_eq!(first.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["group", "kind", "namespace", "name"]);
    let deploys = env.json(&["ls", "latest", "--kind", "deploy"]);
    assert_eq!(idents(&deploys), vec!["apps/Deployment/blog/web", "apps/Deployment/shop/web"]);
    let shop = env.json(&["ls", "latest", "-n", "shop", "--kind", "cm"]);
    assert_eq!(shop.as_array().unwrap().len(), 2);
    let widgets = env.json(&["ls", "latest", "--kind", "wg"]);
    assert_eq!(idents(&widgets), vec!["example.com/Widget/shop/gizmo"]);
    let cluster_scoped = env.json(&["ls", "latest", "--kind", "namespaces"]);
    assert_eq!(idents(&cluster_scoped), vec!["/Namespace//blog", "/Namespace//shop"]);
}

#[test]
fn diff_counts_desired_changes_and_hides_secrets() {
    let env = Env::new();
    let (a, b) = two_snapshots(&env);
    let d = env.json(&["diff", &a, &b]);
    assert_eq!(idents(&d["added"]), Vec::<String>::new());
    assert_eq!(idents(&d["removed"]), Vec::<String>::new());
    assert_eq!(
        idents(&d["modified"]),
        vec![
            "/Secret/blog/web-secret",
            "/Secret/shop/web-secret",
            "apps/Deployment/blog/web",
            "apps/Deployment/shop/web",
            "example.com/Widget/shop/gizmo"
        ]
    );
    // Server-owned changes count only with --server-fields (the Deployments' status changed too,
    // but they are already modified; the Namespace's did not change).
    let p = env.ok(&["diff", &a, &b, "-p", "-n", "shop"]);
    assert!(p.contains("~ spec.template.spec.containers[0].image: \"nginx:1.20\" -> \"nginx:1.21\""), "{p}");
    assert!(p.contains("data.password: \"(secret value, 7 bytes)\" -> \"(secret value, 7 bytes)\""), "{p}");
    assert!(!p.contains("c2VjcmV0"), "secret values leaked:\n{p}");
    let shown = env.ok(&["diff", &a, &b, "-p", "-n", "shop", "--show-secrets"]);
    assert!(shown.contains("c2VjcmV0MQ=="), "{shown}");
    let j = env.json(&["diff", &a, &b, "-p", "--kind", "secret", "-n", "blog"]);
    assert_eq!(j["changes"][0]["fields"][0]["path"], "data.password");
    assert_eq!(idents(&j["modified"]), vec!["/Secret/blog/web-secret"]);
}

#[test]
fn restore_round_trips_as_kubernetes_reads_it() {
    let env = Env::new();
    let d0 = env.path("d0");
    synthetic_cluster(&d0, 0);
    env.snapshot(&d0, "2026-01-01T00:00:00Z", &[]);
    let out = env.path("out");
    env.ok(&["restore", "latest", "--to-dir", out.to_str().unwrap(), "--server-fields"]);
    let (same, report) = super::common::oracle_compare(&d0, &out, false);
    assert!(same, "{report}");
    let desired = env.path("desired");
    env.ok(&["restore", "latest", "--to-dir", desired.to_str().unwrap()]);
    let (same, report) = super::common::oracle_compare(&d0, &desired, true);
    assert!(same, "{report}");
    // The octal mode stays 420 (0644), "yes" stays a string, binary Secret data is intact.
    let dep = super::common::oracle_read(&desired.join("namespaces/shop/Deployment.apps/web.yaml"));
    assert_eq!(dep[0]["spec"]["template"]["spec"]["volumes"][0]["configMap"]["defaultMode"], 420);
    let cm = super::common::oracle_read(&desired.join("namespaces/shop/ConfigMap.core/web-config.yaml"));
    assert_eq!(cm[0]["data"]["enabled"], "yes");
    let secret = env.ok(&["restore", "latest", "secret/web-secret", "-n", "shop", "--stdout"]);
    assert!(secret.contains("AAEC/f7/"), "{secret}");
}

#[test]
fn restore_one_resource_by_kubectl_names() {
    let env = Env::new();
    let (a, _) = two_snapshots(&env);
    let table: &[(&[&str], &str)] = &[
        (&["deployment/web", "-n", "shop"], "nginx:1.21"),
        (&["deploy/web", "-n", "blog"], "namespace: blog"),
        (&["deployments.apps/web", "-n", "shop"], "kind: Deployment"),
        (&["Deployment.apps/web", "-n", "shop"], "kind: Deployment"),
        (&["cm/web-config", "-n", "shop"], "héllo wörld ✓"),
        (&["ns/shop"], "kind: Namespace"),
        (&["clusterrole/system:view"], "system:view"),
        (&["crd/widgets.example.com"], "kind: CustomResourceDefinition"),
        (&["wg/gizmo"], "size: 4"),
        (&["widgets.example.com/gizmo"], "size: 4"),
    ];
    for (args, want) in table {
        let mut full = vec!["restore", "latest"];
        full.extend_from_slice(args);
        full.push("--stdout");
        let out = env.ok(&full);
        assert!(out.contains(want), "{args:?}: {out}");
    }
    // An older snapshot by id prefix, and by time.
    let old = env.ok(&["restore", &a[..8], "deploy/web", "-n", "shop", "--stdout"]);
    assert!(old.contains("nginx:1.20"), "{old}");
    let at = env.ok(&["restore", "--at", "2026-01-01T12:00:00Z", "deploy/web", "-n", "shop", "--stdout"]);
    assert!(at.contains("nginx:1.20"), "{at}");
    let at_next = env.ok(&["restore", "--at", "2026-01-02T00:00:00", "deploy/web", "-n", "shop", "--stdout"]);
    assert!(at_next.contains("nginx:1.21"), "{at_next}");
    let relative = env.ok(&["restore", "--at", "1h", "deploy/web", "-n", "shop", "--stdout"]);
    assert!(relative.contains("nginx:1.21"), "{relative}");
    let prev = env.ok(&["restore", "latest~1", "deploy/web", "-n", "shop", "--stdout"]);
    assert!(prev.contains("nginx:1.20"), "{prev}");
}

#[test]
fn names_that_do_not_resolve_say_why() {
    let env = Env::new();
    let (_, _) = two_snapshots(&env);
    let table: &[(&[&str], i32, &str)] = &[
        (&["deploy/web"], 2, "several namespaces (blog, shop)"),
        (&["deploy/nope", "-n", "shop"], 5, "Deployment.apps/nope in namespace shop"),
        (&["frobnicator/x"], 5, "frobnicator"),
        (&["deploy/"], 2, "names no object"),
        (&["web"], 2, "TYPE/NAME"),
    ];
    for (args, code, want) in table {
        let mut full = vec!["restore", "latest"];
        full.extend_from_slice(args);
        full.push("--stdout");
        let (c, err) = env.fail(&full);
        assert_eq!(c, *code, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    let (c, err) = env.fail(&["restore", "deadbeef", "--stdout"]);
    assert_eq!(c, 5);
    assert!(err.contains("snapshot not found: deadbeef"), "{err}");
    let (c, err) = env.fail(&["restore", "latest~9", "--stdout"]);
    assert_eq!(c, 5, "{err}");
    let (c, err) = env.fail(&["restore", "--at", "2020-01-01T00:00:00Z", "--stdout"]);
    assert_eq!(c, 5, "{err}");
}

#[test]
fn several_clusters_must_be_named() {
    let env = Env::new();
    let d0 = env.path("d0");
    synthetic_cluster(&d0, 0);
    env.snapshot(&d0, "2026-01-01T00:00:00Z", &["--cluster", "east"]);
    env.snapshot(&d0, "2026-01-02T00:00:00Z", &["--cluster", "west"]);
    let (c, err) = env.fail(&["restore", "latest", "ns/shop", "--stdout"]);
    assert_eq!(c, 2);
    assert!(err.contains("several clusters (east, west)") && err.contains("--cluster"), "{err}");
    env.ok(&["restore", "latest", "ns/shop", "--stdout", "--cluster", "east"]);
    let (c, err) = env.fail(&["log", "ns/shop"]);
    assert_eq!(c, 2, "{err}");
    let (c, err) = env.fail(&["ls", "latest", "--cluster", "north"]);
    assert_eq!(c, 5);
    assert!(err.contains("east, west"), "{err}");
    // The listing is ordered by time, not by commit.
    env.snapshot(&d0, "2025-12-31T00:00:00Z", &["--cluster", "east"]);
    let list = env.json(&["snapshots", "list", "--cluster", "east"]);
    let times: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["time"].as_str().unwrap()).collect();
    assert_eq!(times, vec!["2025-12-31T00:00:00Z", "2026-01-01T00:00:00Z"]);
}

#[test]
fn log_shows_history_newest_first() {
    let env = Env::new();
    let d = env.path("d");
    synthetic_cluster(&d, 0);
    let a = env.snapshot(&d, "2026-01-01T00:00:00Z", &[]);
    std::fs::remove_file(d.join("namespaces/shop/Deployment.apps/web.yaml")).unwrap();
    let b = env.snapshot(&d, "2026-01-02T00:00:00Z", &[]);
    synthetic_cluster(&d, 1);
    let c = env.snapshot(&d, "2026-01-03T00:00:00Z", &[]);
    let _ = env.snapshot(&d, "2026-01-04T00:00:00Z", &[]);
    let log = env.json(&["log", "deploy/web", "-n", "shop"]);
    let recs: Vec<(String, String)> = log["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["snapshot"].as_str().unwrap().to_owned(), r["change"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(recs, vec![(c.clone(), "added".into()), (b, "removed".into()), (a, "added".into())]);
    let secret_log = env.ok(&["log", "secret/web-secret", "-n", "shop", "-p"]);
    assert!(secret_log.contains("modified") && !secret_log.contains("c2VjcmV0"), "{secret_log}");
}

#[test]
fn invalid_documents_commit_nothing_unless_skipped() {
    let env = Env::new();
    let d = env.path("d");
    synthetic_cluster(&d, 0);
    write(&d, "kustomize/kustomization.yaml", "resources:\n- a.yaml\n");
    write(&d, "multi.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: shop\n---\n# only a comment\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  generateName: p-\n");
    write(&d, "broken.yml", "apiVersion: v1\nkind: [unclosed\n");
    let (c, err) = env.fail(&["snapshot", "--from-dir", d.to_str().unwrap()]);
    assert_eq!(c, 7, "{err}");
    assert!(err.contains("broken.yml") && err.contains("and 2 more"), "{err}");
    assert_eq!(env.json(&["snapshots", "list"]), serde_json::json!([]), "nothing committed");
    let out = env.run(&["snapshot", "--from-dir", d.to_str().unwrap(), "--skip-invalid", "--json"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kustomization.yaml")
            && err.contains("generateName")
            && err.contains("skipped 3 invalid document(s)"),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["objects"], 15);
    assert_eq!(v["skipped_documents"], 3);
}

#[test]
fn duplicate_identities_name_both_files() {
    let env = Env::new();
    let d = env.path("d");
    write(&d, "a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: team\n");
    write(
        &d,
        "sub/b.json",
        r#"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "team"}}]}"#,
    );
    let (c, err) = env.fail(&["snapshot", "--from-dir", d.to_str().unwrap()]);
    assert_eq!(c, 7);
    assert!(err.contains("a.yaml") && err.contains("sub/b.json") && err.contains("ConfigMap/x -n team"), "{err}");
}

#[test]
fn yaml_is_read_as_kubernetes_reads_it() {
    let env = Env::new();
    let d = env.path("d");
    // A bare `n` is the boolean false for Kubernetes: not a namespace name.
    write(&d, "a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: n\n");
    let (c, err) = env.fail(&["snapshot", "--from-dir", d.to_str().unwrap()]);
    assert_eq!(c, 7);
    assert!(err.contains("a.yaml") && err.contains("namespace") && err.contains("quote"), "{err}");
}

#[test]
fn list_wrappers_and_json_files_are_read() {
    let env = Env::new();
    let d = env.path("d");
    write(&d, "cms.yaml", "apiVersion: v1\nkind: ConfigMapList\nitems:\n- metadata:\n    name: one\n    namespace: team\n- metadata:\n    name: two\n    namespace: team\n");
    write(
        &d,
        "x.json",
        r#"{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "j", "namespace": "team"}, "spec": {"replicas": 1.5e0}}"#,
    );
    write(&d, "ignored.txt", "not yaml");
    env.snapshot(&d, "2026-01-01T00:00:00Z", &[]);
    assert_eq!(
        idents(&env.json(&["ls", "latest"])),
        vec!["/ConfigMap/team/one", "/ConfigMap/team/two", "apps/Deployment/team/j"]
    );
}

#[test]
fn repository_and_password_errors() {
    let env = Env::new();
    let (c, err) = env.fail(&["init"]);
    assert_eq!(c, 3);
    assert!(err.contains("already exists"), "{err}");
    let (c, err) = env
        .cmd(&["snapshots", "list"])
        .env("KUBESNAP_PASSWORD", "wrong")
        .output()
        .map(|o| (o.status.code().unwrap(), String::from_utf8_lossy(&o.stderr).into_owned()))
        .unwrap();
    assert_eq!(c, 4);
    assert!(err.contains("wrong password"), "{err}");
    let other = Env::uninit();
    let (c, err) = other.fail(&["snapshots", "list"]);
    assert_eq!(c, 3);
    assert!(err.contains("no kubesnap repository") && err.contains("kubesnap init"), "{err}");
    let (_, err) = env
        .cmd(&["snapshots", "list"])
        .env_remove("KUBESNAP_PASSWORD")
        .output()
        .map(|o| (0, String::from_utf8_lossy(&o.stderr).into_owned()))
        .unwrap();
    assert!(err.contains("no password"), "{err}");
    // Password from a file and from a command.
    let pw = env.path("pw");
    std::fs::write(&pw, format!("{}\n", super::common::PASSWORD)).unwrap();
    let out = env
        .cmd(&["snapshots", "list"])
        .env_remove("KUBESNAP_PASSWORD")
        .env("KUBESNAP_PASSWORD_FILE", &pw)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = env
        .cmd(&["snapshots", "list", "--password-command", &format!("cat {}", pw.display())])
        .env_remove("KUBESNAP_PASSWORD")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // No cache on disk at all.
    let out =
        env.cmd(&["snapshots", "list", "--no-cache"]).env("KUBESNAP_CACHE_DIR", "/proc/nonexistent").output().unwrap();
    assert!(out.status.success());
}

#[test]
fn stats_and_check_report() {
    let env = Env::new();
    let (_, _) = two_snapshots(&env);
    let s = env.json(&["stats"]);
    assert_eq!(s["snapshots"], 2);
    assert_eq!(s["objects"], 28);
    assert!(
        s["stored_bytes"].as_u64().unwrap() > 0
            && s["deduplicated_bytes"].as_u64().unwrap() < s["logical_bytes"].as_u64().unwrap()
    );
    let one = env.json(&["stats", "latest"]);
    assert_eq!(one["objects"], 14);
    let c = env.json(&["check", "--read-data"]);
    assert_eq!(c["errors"], serde_json::json!([]));
    assert_eq!(c["snapshots"], 2);
}

#[test]
fn snapshot_writes_a_report_file_for_a_job_to_hand_back() {
    let env = Env::new();
    let src = env.path("src");
    super::common::synthetic_cluster(&src, 0);
    let report = env.path("report.json");
    let id =
        env.ok(&["snapshot", "--from-dir", src.to_str().unwrap(), "-q", "--report-file", report.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(v["exitCode"], 0);
    assert_eq!(v["report"]["id"].as_str(), Some(id.trim()));
    assert!(v["report"]["objects"].as_u64().unwrap() > 0);
    // A failure is reported too: its exit code and its one line.
    let (code, err) =
        env.fail(&["snapshot", "--from-dir", "/nonexistent/dump", "-q", "--report-file", report.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(v["exitCode"].as_i64(), Some(i64::from(code)), "{err}");
    assert!(v["error"].as_str().unwrap().contains("/nonexistent/dump"), "{v}");
}

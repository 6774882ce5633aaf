//! Snapshots of a live cluster, against the test API server: equality with dump-folder
//! snapshots, diffs that match gen-history's truth, scopes and filters, and faults.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kubesnap_testserver::{Fault, FaultAction, Options, TestServer};
use serde_json::Value;

use super::common::{corpus, gen_history, idents, strings, write, Env};

/// A server loaded with a folder, and a kubeconfig for it in the environment's folder.
fn serve(env: &Env, fixtures: &Path, name: &str) -> (TestServer, PathBuf) {
    serve_with(env, fixtures, name, Options::default())
}

fn serve_with(env: &Env, fixtures: &Path, name: &str, opts: Options) -> (TestServer, PathBuf) {
    let server = TestServer::start(Options {
        fixtures: Some(fixtures.to_path_buf()),
        default_namespaces: false,
        compaction_interval: None,
        ..opts
    })
    .expect("start the test API server");
    let kc = env.path(&format!("{name}.kubeconfig"));
    server.write_kubeconfig(&kc).expect("kubeconfig");
    (server, kc)
}

/// `snapshot` of the cluster behind `kc` into cluster `cluster`; its JSON report.
fn live(env: &Env, kc: &Path, cluster: &str, extra: &[&str]) -> Value {
    let mut args = vec!["snapshot", "--kubeconfig", kc.to_str().unwrap(), "--cluster", cluster, "-q"];
    args.extend_from_slice(extra);
    env.json(&args)
}

/// The identities a snapshot holds, as "group/Kind/namespace/name".
fn contents(env: &Env, snap: &str) -> BTreeSet<String> {
    idents(&env.json(&["ls", snap])).into_iter().collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_live_snapshot_equals_the_dump_and_diffs_as_the_truth_says() {
    let Some(corpus) = corpus("a_live_snapshot_equals_the_dump_and_diffs_as_the_truth_says") else { return };
    let env = Env::new();
    let hist = env.path("hist");
    let truth = gen_history(&corpus, &hist, 6, 2, 7);
    let days = truth.as_array().unwrap();
    let dir = |d: usize| hist.join(days[d]["dir"].as_str().unwrap());

    let (s0, kc0) = serve(&env, &dir(0), "day0");
    let live0 = live(&env, &kc0, "prod", &[]);
    s0.stop();
    assert_eq!(live0["partial"], false);
    assert_eq!(live0["skipped"], serde_json::json!([]));
    let dir0 = env.snapshot(&dir(0), days[0]["time"].as_str().unwrap(), &["--cluster", "dump"]);
    // The same objects, the same desired state and the same server-owned fields; only an
    // object a file gives at an older version of its group is served (and so captured) at the
    // group's preferred version, as kubectl would show it.
    let same = env.json(&["diff", dir0.as_str(), live0["id"].as_str().unwrap(), "--server-fields", "-p"]);
    for k in ["added", "removed"] {
        assert_eq!(same[k], serde_json::json!([]), "live vs dump of day 0: {k}");
    }
    for c in same["changes"].as_array().unwrap() {
        let fields = c["fields"].as_array().unwrap();
        assert_eq!(fields.len(), 1, "{c}");
        assert_eq!(fields[0]["path"], "apiVersion", "{c}");
        let group = |v: &Value| v.as_str().unwrap().rsplit_once('/').map(|(g, _)| g.to_string());
        assert_eq!(group(&fields[0]["old"]), group(&fields[0]["new"]), "{c}");
    }
    assert_eq!(live0["objects"], env.json(&["snapshots", "show", &dir0])["objects"]);

    let (s5, kc5) = serve(&env, &dir(5), "day5");
    let live5 = live(&env, &kc5, "prod", &[]);
    s5.stop();
    // What the truth says changed from day 0 to day 5, composed day by day.
    let mut exists: BTreeSet<String> = contents(&env, live0["id"].as_str().unwrap());
    let at0 = exists.clone();
    let mut touched = BTreeSet::new();
    for day in &days[1..=5] {
        for r in strings(&day["removed"]) {
            exists.remove(&r);
            touched.insert(r);
        }
        for a in strings(&day["added"]) {
            exists.insert(a.clone());
            touched.insert(a);
        }
        touched.extend(strings(&day["modified"]));
    }
    let added: Vec<String> = exists.difference(&at0).cloned().collect();
    let removed: Vec<String> = at0.difference(&exists).cloned().collect();
    let modified: Vec<String> = at0.intersection(&exists).filter(|i| touched.contains(*i)).cloned().collect();
    let diff = env.json(&["diff", live0["id"].as_str().unwrap(), live5["id"].as_str().unwrap()]);
    assert_eq!(idents(&diff["added"]), added, "added");
    assert_eq!(idents(&diff["removed"]), removed, "removed");
    assert_eq!(idents(&diff["modified"]), modified, "modified");
    assert_eq!(live5["added"].as_u64(), Some(added.len() as u64));
    assert_eq!(live5["modified"].as_u64(), Some(modified.len() as u64));

    // The manifest records the cluster and its types; names resolve without the cluster.
    let show = env.json(&["snapshots", "show", live5["id"].as_str().unwrap()]);
    assert_eq!(show["source"]["kind"], "cluster");
    assert_eq!(show["source_info"]["server_version"], "v1.33.1");
    assert_eq!(show["source_info"]["scope"]["kind"], "cluster");
    assert!(show["types"].as_array().unwrap().iter().any(|t| t["kind"] == "Deployment" && t["source"] == "discovery"));
    let check = env.json(&["check", "--read-data"]);
    assert_eq!(check["errors"], serde_json::json!([]));
}

/// A namespace `shop` holding one application and its neighbours, a second namespace, and
/// cluster-scoped objects.
fn shop_cluster(root: &Path) {
    let docs = [
        ("cluster/ns-shop.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  uid: ns-shop\n"),
        ("cluster/ns-other.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: other\n  uid: ns-other\n"),
        ("cluster/ns-ks.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: kube-system\n  uid: 5e1f0000-0000-4000-8000-000000000001\n"),
        ("cluster/role.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: reader\n  labels:\n    app: web\nrules: []\n"),
        ("shop/deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  uid: d-web\n  labels:\n    app: web\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      serviceAccountName: web-sa\n      volumes:\n      - name: c\n        configMap:\n          name: web-config\n      containers:\n      - name: web\n        image: nginx\n        envFrom:\n        - secretRef:\n            name: web-secret\n"),
        ("shop/rs.yaml", "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web-1\n  namespace: shop\n  uid: rs-web-1\n  labels:\n    app: web\n  ownerReferences:\n  - apiVersion: apps/v1\n    kind: Deployment\n    name: web\n    uid: d-web\n    controller: true\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: nginx\n"),
        ("shop/pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-1-abc\n  namespace: shop\n  uid: pod-web\n  labels:\n    app: web\n  ownerReferences:\n  - apiVersion: apps/v1\n    kind: ReplicaSet\n    name: web-1\n    uid: rs-web-1\n    controller: true\nspec:\n  containers:\n  - name: web\n    image: nginx\n"),
        ("shop/svc.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\n  uid: svc-web\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n"),
        ("shop/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  namespace: shop\ndata:\n  a: b\n"),
        ("shop/cm2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unrelated\n  namespace: shop\ndata:\n  x: y\n"),
        ("shop/secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-secret\n  namespace: shop\ntype: Opaque\ndata:\n  password: aHVudGVyMg==\n"),
        ("shop/sa.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web-sa\n  namespace: shop\n"),
        ("shop/event.yaml", "apiVersion: v1\nkind: Event\nmetadata:\n  name: web.1\n  namespace: shop\ninvolvedObject:\n  kind: Pod\n  name: web-1-abc\nreason: Started\n"),
        ("other/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: other\n  labels:\n    app: web\ndata:\n  k: v\n"),
        ("other/secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n  namespace: other\ntype: Opaque\ndata:\n  t: dDBrM24=\n"),
    ];
    for (rel, text) in docs {
        write(root, rel, text);
    }
}

const NS_SHOP: &str = "/Namespace//shop";
const NS_OTHER: &str = "/Namespace//other";
const NS_KS: &str = "/Namespace//kube-system";
const ROLE: &str = "rbac.authorization.k8s.io/ClusterRole//reader";
const DEPLOY: &str = "apps/Deployment/shop/web";
const RS: &str = "apps/ReplicaSet/shop/web-1";
const POD: &str = "/Pod/shop/web-1-abc";
const SVC: &str = "/Service/shop/web";
const CM: &str = "/ConfigMap/shop/web-config";
const CM2: &str = "/ConfigMap/shop/unrelated";
const SECRET: &str = "/Secret/shop/web-secret";
const SA: &str = "/ServiceAccount/shop/web-sa";
const EVENT: &str = "/Event/shop/web.1";
const OTHER_CM: &str = "/ConfigMap/other/settings";
const OTHER_SECRET: &str = "/Secret/other/token";

#[test]
fn scopes_and_filters_capture_exactly_what_they_name() {
    let env = Env::new();
    let src = env.path("src");
    shop_cluster(&src);
    let (server, kc) = serve(&env, &src, "shop");
    let all = [NS_SHOP, NS_OTHER, NS_KS, ROLE, DEPLOY, RS, POD, SVC, CM, CM2, SECRET, SA, OTHER_CM, OTHER_SECRET];
    let shop = [NS_SHOP, DEPLOY, RS, POD, SVC, CM, CM2, SECRET, SA];
    let cases: Vec<(&[&str], Vec<&str>)> = vec![
        (&[], all.to_vec()),
        (&["--include-resource", "events"], vec![EVENT]),
        (&["-n", "shop"], shop.to_vec()),
        (&["-n", "shop,other", "--exclude-resource", "secrets"], {
            let mut v: Vec<&str> = shop.iter().copied().filter(|s| *s != SECRET).collect();
            v.extend([NS_OTHER, OTHER_CM]);
            v
        }),
        (&["--exclude-namespace", "shop"], vec![NS_OTHER, NS_KS, ROLE, OTHER_CM, OTHER_SECRET]),
        (&["-n", "shop", "--include-cluster-resources"], {
            let mut v = shop.to_vec();
            v.extend([NS_OTHER, NS_KS, ROLE]);
            v
        }),
        (
            &["--include-cluster-resources=false"],
            vec![DEPLOY, RS, POD, SVC, CM, CM2, SECRET, SA, OTHER_CM, OTHER_SECRET],
        ),
        (&["--selector", "app=web"], vec![ROLE, DEPLOY, RS, POD, OTHER_CM]),
        (&["--include-resource", "cm,deployments.apps"], vec![DEPLOY, CM, CM2, OTHER_CM]),
        (&["--app", "deployment/web", "-n", "shop"], vec![NS_SHOP, DEPLOY, RS, POD]),
        (
            &["--app", "deploy/web", "-n", "shop", "--with-references"],
            vec![NS_SHOP, DEPLOY, RS, POD, SVC, CM, SECRET, SA],
        ),
        (&["--app", "svc/web", "-n", "shop"], vec![NS_SHOP, SVC]),
    ];
    for (i, (args, want)) in cases.iter().enumerate() {
        let r = live(&env, &kc, &format!("c{i}"), args);
        let got = contents(&env, r["id"].as_str().unwrap());
        assert_eq!(got, set(want), "snapshot {args:?}");
    }
    // An application that does not exist, and a type nobody serves.
    let (code, err) =
        env.fail(&["snapshot", "--kubeconfig", kc.to_str().unwrap(), "--app", "deployment/nope", "-n", "shop"]);
    assert_eq!(code, 5, "{err}");
    let (code, err) = env.fail(&["snapshot", "--kubeconfig", kc.to_str().unwrap(), "--include-resource", "widgets"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("widgets"), "{err}");
    server.stop();
}

#[test]
fn redacted_secrets_keep_their_keys_only() {
    let env = Env::new();
    let src = env.path("src");
    shop_cluster(&src);
    let (server, kc) = serve(&env, &src, "shop");
    let r = live(&env, &kc, "c", &["--redact-secrets", "-n", "shop"]);
    let yaml = env.ok(&["restore", r["id"].as_str().unwrap(), "secret/web-secret", "-n", "shop", "--stdout"]);
    assert!(yaml.contains("password: \"\"") || yaml.contains("password: ''"), "{yaml}");
    assert!(!yaml.contains("aHVudGVyMg"), "{yaml}");
    // Nothing of the value reached the cache or the repository in clear.
    for dir in [&env.cache, &env.repo] {
        for entry in walk(dir) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(!bytes.windows(10).any(|w| w == b"aHVudGVyMg"), "{}", entry.display());
        }
    }
    // Unredacted by default.
    let r = live(&env, &kc, "c2", &["-n", "shop"]);
    let yaml = env.ok(&["restore", r["id"].as_str().unwrap(), "secret/web-secret", "-n", "shop", "--stdout"]);
    assert!(yaml.contains("aHVudGVyMg=="), "{yaml}");
    server.stop();
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn an_unchanged_cluster_reuses_everything_and_legacy_discovery_sees_the_same() {
    let env = Env::new();
    let src = env.path("src");
    shop_cluster(&src);
    let (server, kc) = serve(&env, &src, "shop");
    let first = live(&env, &kc, "c", &[]);
    server.clear_requests();
    let second = live(&env, &kc, "c", &[]);
    assert_eq!(
        (second["added"].as_u64(), second["modified"].as_u64(), second["removed"].as_u64()),
        (Some(0), Some(0), Some(0))
    );
    assert_eq!(second["objects"], first["objects"]);
    // One change is one modification.
    let mut cm = server.store().get_object("", "configmaps", Some("shop"), "web-config").expect("configmap");
    cm["data"]["a"] = Value::String("changed".into());
    server.store().put_object(cm).expect("update");
    let third = live(&env, &kc, "c", &[]);
    assert_eq!(third["modified"].as_u64(), Some(1));
    server.stop();

    let (legacy, kc2) = serve_with(&env, &src, "legacy", Options { aggregated_discovery: false, ..Options::default() });
    let old = live(&env, &kc2, "legacy", &[]);
    let show = env.json(&["snapshots", "show", old["id"].as_str().unwrap()]);
    assert_eq!(show["source_info"]["discovery"], "legacy");
    assert_eq!(contents(&env, old["id"].as_str().unwrap()), contents(&env, first["id"].as_str().unwrap()));
    legacy.stop();
}

#[test]
fn a_forbidden_type_is_skipped_recorded_and_warned() {
    let env = Env::new();
    let src = env.path("src");
    shop_cluster(&src);
    let (server, kc) = serve(&env, &src, "shop");
    server.faults().add(Fault::new(FaultAction::Forbidden).on("", "secrets"));
    let out = env.run(&["snapshot", "--kubeconfig", kc.to_str().unwrap(), "--json", "-q"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning: cannot list secrets (403 Forbidden)"), "{stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let show = env.json(&["snapshots", "show", r["id"].as_str().unwrap()]);
    let skipped = show["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!((skipped[0]["kind"].as_str(), skipped[0]["partial"].as_bool()), (Some("Secret"), Some(false)));
    assert!(skipped[0]["reason"].as_str().unwrap().starts_with("forbidden"), "{skipped:?}");
    assert_eq!(show["partial"], false);
    let got = contents(&env, r["id"].as_str().unwrap());
    assert!(!got.contains(SECRET) && got.contains(CM));
    server.stop();
}

#[test]
fn expired_lists_restart_and_transient_errors_are_retried() {
    let env = Env::new();
    let src = env.path("src");
    shop_cluster(&src);
    let (server, kc) = serve(&env, &src, "shop");
    let reference = contents(&env, live(&env, &kc, "ref", &[])["id"].as_str().unwrap());
    server.faults().add(Fault::gone_on_continue(1).on("", "configmaps"));
    server.faults().add(Fault::new(FaultAction::InternalError).on("apps", "deployments").times(2));
    server.faults().add(Fault::new(FaultAction::TooManyRequests { retry_after_seconds: 1 }).on("", "pods").times(1));
    server.faults().add(Fault::new(FaultAction::MalformedBody).on("", "services").times(1));
    server.faults().add(Fault::new(FaultAction::TruncatedBody).on("", "serviceaccounts").times(1));
    server.faults().add(Fault::new(FaultAction::Status { code: 503 }).on("", "namespaces").times(1));
    let r = live(&env, &kc, "faulty", &["--page-size", "1"]);
    assert_eq!(contents(&env, r["id"].as_str().unwrap()), reference);
    assert_eq!(r["partial"], false);
    assert!(r["restarts"].as_u64().unwrap() >= 1, "{r}");
    let faulted: Vec<String> = server
        .requests()
        .iter()
        .filter(|q| q.fault.is_some())
        .map(|q| format!("{} {:?} {}", q.status, q.resource, q.fault.as_deref().unwrap_or_default()))
        .collect();
    assert!(r["retries"].as_u64().unwrap() >= 6, "{r}\n{faulted:#?}");
    let statuses: Vec<u16> = server.requests().iter().map(|q| q.status).collect();
    for code in [410, 500, 429, 503] {
        assert!(statuses.contains(&code), "no {code} was served: {statuses:?}");
    }
    server.stop();
}

#[test]
fn a_type_that_keeps_failing_makes_a_partial_snapshot_or_none() {
    let env = Env::new();
    let src = env.path("src");
    shop_cluster(&src);
    let (server, kc) = serve(&env, &src, "shop");
    server.faults().add(Fault::new(FaultAction::InternalError).on("", "configmaps"));
    let kcs = kc.to_str().unwrap();
    let out = env.run(&["snapshot", "--kubeconfig", kcs, "--retries", "2", "--json", "-q"]);
    assert_eq!(out.status.code(), Some(10), "{}", String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["partial"], true);
    let show = env.json(&["snapshots", "show", r["id"].as_str().unwrap()]);
    assert_eq!(show["partial"], true);
    let list = env.json(&["snapshots", "list"]);
    assert_eq!(list[0]["partial"], true);
    let (code, err) = env.fail(&["snapshot", "--kubeconfig", kcs, "--retries", "2", "--no-partial", "-q"]);
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("no snapshot was committed"), "{err}");
    assert_eq!(env.json(&["snapshots", "list"]).as_array().unwrap().len(), 1);
    server.stop();
}

#[test]
fn a_server_that_goes_away_commits_nothing() {
    let env = Env::new();
    let src = env.path("src");
    shop_cluster(&src);
    let (server, kc) = serve(&env, &src, "shop");
    let kcs = kc.to_str().unwrap().to_string();
    env.ok(&["snapshot", "--kubeconfig", &kcs, "-q"]);
    // Connections to one type are cut, every time: the snapshot fails as a whole.
    let fault = server.faults().add(Fault::new(FaultAction::DropConnection).on("", "configmaps"));
    let (code, err) = env.fail(&["snapshot", "--kubeconfig", &kcs, "--retries", "2", "-q"]);
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("cannot reach the cluster of context \"kubesnap-testserver\""), "{err}");
    assert!(err.contains("no snapshot was committed"), "{err}");
    assert_eq!(err.trim().lines().filter(|l| !l.starts_with("warning:")).count(), 1, "{err}");
    server.faults().remove(fault);
    // The server stops in the middle of the lists.
    server.faults().add(Fault::new(FaultAction::Delay { millis: 1500 }).on("", "secrets"));
    let child = env
        .cmd(&["snapshot", "--kubeconfig", &kcs, "--retries", "2", "-q"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    server.stop();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(9), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(env.json(&["snapshots", "list"]).as_array().unwrap().len(), 1);
    assert_eq!(env.json(&["check", "--read-data"])["errors"], serde_json::json!([]));
    // Nobody there at all.
    let (code, err) = env.fail(&["snapshot", "--kubeconfig", &kcs, "--retries", "1"]);
    assert_eq!(code, 9, "{err}");
    assert!(err.contains("cannot reach"), "{err}");
}

/// Against a real cluster: `KUBESNAP_REAL_CLUSTER=1 cargo test --test integration real_cluster
/// -- --ignored`, with KUBECONFIG pointing at it (for example `kind create cluster` or
/// `k3d cluster create`). Checks that the whole cluster is captured with nothing skipped, that
/// the kube-system namespace and its uid are recorded, and that a second snapshot of the idle
/// cluster reuses what it can.
#[test]
#[ignore = "needs a real cluster (kind or k3d) and KUBECONFIG"]
fn real_cluster() {
    let env = Env::new();
    let r = env.json(&["snapshot", "-q"]);
    assert_eq!(r["partial"], false, "{r}");
    let show = env.json(&["snapshots", "show", r["id"].as_str().unwrap()]);
    assert!(show["source_info"]["cluster_uid"].is_string(), "{show}");
    let got = contents(&env, r["id"].as_str().unwrap());
    assert!(got.contains(NS_KS), "kube-system missing");
    assert!(got.iter().any(|i| i.starts_with("/ServiceAccount/kube-system/")));
    let again = env.json(&["snapshot", "-q"]);
    assert!(again["modified"].as_u64().unwrap() < again["objects"].as_u64().unwrap() / 10, "{again}");
}

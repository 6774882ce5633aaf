//! Restores into a cluster (`restore --apply`, `--dry-run`) and `diff --live`, against the test
//! API server: a whole gen-history day into an empty cluster, one resource by name, conflicts
//! and immutable fields, namespace maps, custom resources with their definitions, and faults.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kubesnap_testserver::{Fault, FaultAction, TestServer};
use serde_json::{json, Value};

use super::common::{corpus, gen_history, ident, idents, kubectl, test_server, write, Env};

/// The object as the server has it now.
fn live_object(server: &TestServer, group: &str, kind: &str, ns: &str, name: &str) -> Option<Value> {
    let plural = server.store().with_registry(|r| r.by_kind(group, kind).map(|t| t.plural.clone()))?;
    server.store().get_object(group, &plural, (!ns.is_empty()).then_some(ns), name)
}

/// The results of a restore report by action: "group/Kind/namespace/name" sets.
fn by_action(report: &Value, action: &str) -> BTreeSet<String> {
    report["results"].as_array().unwrap().iter().filter(|r| r["action"] == action).map(ident).collect()
}

fn result_of<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["results"].as_array().unwrap().iter().find(|r| ident(r) == id).unwrap_or_else(|| panic!("{id} in {report}"))
}

/// Whether a field difference between a stored object and its restored copy is one the
/// documented clean-up makes (README, "Restoring into a cluster"), written out again here
/// rather than taken from the code under test.
fn documented_cleanup(kind: &str, change: &Value) -> bool {
    let path = change["path"].as_str().unwrap();
    let op = change["op"].as_str().unwrap();
    let annotations = [
        "kubectl.kubernetes.io/last-applied-configuration",
        "deployment.kubernetes.io/revision",
        "pv.kubernetes.io/bind-completed",
        "pv.kubernetes.io/bound-by-controller",
        "volume.kubernetes.io/selected-node",
        "volume.kubernetes.io/storage-provisioner",
        "volume.beta.kubernetes.io/storage-provisioner",
    ];
    // A null member is the same as an absent one to the API server.
    if op == "removed" && change["old"].is_null() {
        return true;
    }
    if op == "removed" && path == "metadata.annotations" {
        return change["old"].as_object().unwrap().keys().all(|k| annotations.contains(&k.as_str()));
    }
    if op == "removed" && annotations.iter().any(|a| path == format!("metadata.annotations[\"{a}\"]")) {
        return true;
    }
    let removed_paths: &[&str] = match kind {
        "Service" => &["spec.clusterIP", "spec.clusterIPs", "spec.healthCheckNodePort"],
        "Pod" => &["spec.nodeName"],
        "PersistentVolumeClaim" => &["spec.volumeName"],
        "PersistentVolume" => &["spec.claimRef.uid", "spec.claimRef.resourceVersion"],
        "Job" => &[
            "spec.selector",
            "spec.template.metadata.labels[\"controller-uid\"]",
            "spec.template.metadata.labels[\"job-name\"]",
            "spec.template.metadata.labels[\"batch.kubernetes.io/controller-uid\"]",
            "spec.template.metadata.labels[\"batch.kubernetes.io/job-name\"]",
        ],
        _ => &[],
    };
    if op == "removed" && removed_paths.contains(&path) {
        return true;
    }
    if kind == "Service" && op == "removed" && path.starts_with("spec.ports[") && path.ends_with("].nodePort") {
        return true;
    }
    // What the API server adds to every Namespace it creates.
    if kind == "Namespace"
        && op == "added"
        && (path == "metadata.labels[\"kubernetes.io/metadata.name\"]" || path == "spec" || path == "spec.finalizers")
    {
        return true;
    }
    if kind == "Namespace" && op == "added" && path == "metadata.labels" {
        return change["new"].as_object().unwrap().keys().all(|k| k == "kubernetes.io/metadata.name");
    }
    path.starts_with("metadata.ownerReferences[") && path.ends_with("].uid")
}

#[test]
fn a_gen_history_day_restores_into_an_empty_cluster() {
    let Some(corpus) = corpus("a_gen_history_day_restores_into_an_empty_cluster") else { return };
    let env = Env::new();
    let hist = env.path("hist");
    let truth = gen_history(&corpus, &hist, 1, 2, 13);
    let day = &truth.as_array().unwrap()[0];
    let snap =
        env.snapshot(&hist.join(day["dir"].as_str().unwrap()), day["time"].as_str().unwrap(), &["--cluster", "src"]);

    let (server, kc) = test_server(&env, None, "target");
    let kcs = kc.to_str().unwrap();
    // The dry run first: it reports and changes nothing.
    let (code, dry) = env.json_code(&["restore", &snap, "--apply", "--dry-run", "--kubeconfig", kcs]);
    assert_eq!(dry["dryRun"], true);
    let writes: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| matches!(r.method.as_str(), "PATCH" | "POST" | "PUT" | "DELETE") && !r.query.contains("dryRun=All"))
        .collect();
    assert!(writes.is_empty(), "the dry run wrote: {writes:?}");
    assert!(live_object(&server, "", "Namespace", "", "kube-system").is_some());
    let namespaces = server.store().list_objects("", "namespaces").len();
    assert_eq!(namespaces, 3, "the dry run created namespaces");

    let (code2, report) = env.json_code(&["restore", &snap, "--apply", "--kubeconfig", kcs]);
    assert_eq!(code, code2, "the dry run and the restore disagree on failures");
    let created = by_action(&report, "created");
    let failed = by_action(&report, "failed");
    let skipped = by_action(&report, "skipped");
    assert_eq!(report["counts"]["created"].as_u64().unwrap() as usize, created.len());
    assert!(created.len() > 100, "{}", report["counts"]);
    // The dry run predicted every creation and failure.
    assert_eq!(by_action(&dry, "created"), created);
    assert_eq!(by_action(&dry, "failed"), failed);
    // The only failures: custom resources whose definition the day does not hold.
    for r in report["results"].as_array().unwrap().iter().filter(|r| r["action"] == "failed") {
        assert!(r["reason"].as_str().unwrap().contains("is not served by this cluster"), "{r}");
    }
    for r in report["results"].as_array().unwrap().iter().filter(|r| r["action"] == "skipped") {
        let why = r["reason"].as_str().unwrap();
        assert!(
            why.starts_with("owned by") || why.starts_with("never restored") || why.starts_with("it exists"),
            "{r}"
        );
    }
    assert_eq!(code, if failed.is_empty() { 0 } else { 10 });

    // A snapshot of the restored cluster holds every restored object, equal to the stored one
    // but for the documented clean-up.
    let after = env.json(&["snapshot", "--kubeconfig", kcs, "--cluster", "after", "-q"]);
    let diff = env.json(&["diff", &snap, after["id"].as_str().unwrap(), "-p"]);
    let not_restored: BTreeSet<String> = failed.union(&skipped).cloned().collect();
    for r in idents(&diff["removed"]) {
        assert!(not_restored.contains(&r), "{r} was neither restored nor reported");
    }
    for a in idents(&diff["added"]) {
        assert!(a.starts_with("/Namespace//"), "{a} appeared from nowhere");
    }
    for c in diff["changes"].as_array().unwrap() {
        for f in c["fields"].as_array().unwrap() {
            // The snapshot of the restored cluster reads every object at its group's preferred
            // version; the day's files may give an older one (applied as it was, or converted).
            if f["path"] == "apiVersion" {
                let group = |v: &Value| v.as_str().unwrap().rsplit_once('/').map(|(g, _)| g.to_string());
                assert_eq!(group(&f["old"]), group(&f["new"]), "{f}");
                continue;
            }
            assert!(documented_cleanup(c["kind"].as_str().unwrap(), f), "{}: {f}", ident(c));
        }
    }
    for id in &created {
        assert!(!idents(&diff["removed"]).contains(id));
    }
    // And diff --live agrees: nothing differs but what was not restored.
    let (code, live) = env.json_code(&["diff", &snap, "--live", "--kubeconfig", kcs]);
    assert_eq!(live["modified"], json!([]), "{live}");
    assert_eq!(idents(&live["removed"]).into_iter().collect::<BTreeSet<_>>(), failed);
    for a in idents(&live["added"]) {
        assert!(a.starts_with("/Namespace//"), "{a}");
    }
    assert_eq!(code, if live["added"] == json!([]) && failed.is_empty() { 0 } else { 11 });
    server.stop();
}

/// A small cluster: an application in `shop` with its configuration, RBAC, an owned
/// ReplicaSet, and a custom resource with its definition.
fn shop(root: &Path) {
    let docs = [
        ("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n"),
        ("deploy.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  annotations:\n    deployment.kubernetes.io/revision: \"3\"\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      serviceAccountName: web\n      containers:\n      - name: web\n        image: nginx:1.27\n"),
        ("rs.yaml", "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: web-5d8f\n  namespace: shop\n  ownerReferences:\n  - apiVersion: apps/v1\n    kind: Deployment\n    name: web\n    uid: 0b0c0d0e-0000-4000-8000-000000000001\n    controller: true\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n"),
        ("svc.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  clusterIP: 10.96.14.2\n  clusterIPs: [10.96.14.2]\n  selector:\n    app: web\n  ports:\n  - port: 80\n"),
        ("cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  namespace: shop\ndata:\n  mode: fast\n"),
        ("secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-db\n  namespace: shop\ntype: Opaque\ndata:\n  password: aHVudGVyMg==\n"),
        ("sa.yaml", "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n  namespace: shop\n"),
        ("role.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: reader\n  namespace: shop\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [get]\n"),
        ("rb.yaml", "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: web-reader\n  namespace: shop\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: reader\nsubjects:\n- kind: ServiceAccount\n  name: web\n  namespace: shop\n"),
        ("crd.yaml", "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names:\n    plural: widgets\n    singular: widget\n    kind: Widget\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n"),
        ("widget.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: blue\n  namespace: shop\nspec:\n  color: blue\n  size: 3\n"),
    ];
    for (rel, text) in docs {
        write(root, rel, text);
    }
}

const DEPLOY: &str = "apps/Deployment/shop/web";
const RS: &str = "apps/ReplicaSet/shop/web-5d8f";
const CM: &str = "/ConfigMap/shop/web-config";
const SECRET: &str = "/Secret/shop/web-db";
const WIDGET: &str = "example.com/Widget/shop/blue";
const CRD: &str = "apiextensions.k8s.io/CustomResourceDefinition//widgets.example.com";

/// A live snapshot of the shop cluster; (env, source server, its kubeconfig, snapshot id).
fn shop_snapshot() -> (Env, TestServer, PathBuf, String) {
    let env = Env::new();
    let src = env.path("src");
    shop(&src);
    let (server, kc) = test_server(&env, Some(&src), "source");
    let r = env.json(&["snapshot", "--kubeconfig", kc.to_str().unwrap(), "--cluster", "shop", "-q"]);
    (env, server, kc, r["id"].as_str().unwrap().to_string())
}

#[test]
fn a_cluster_restores_in_order_with_its_custom_resources_and_owners() {
    let (env, source, _, snap) = shop_snapshot();
    source.stop();
    let (server, kc) = test_server(&env, None, "target");
    let kcs = kc.to_str().unwrap();

    let (code, dry) = env.json_code(&["restore", &snap, "--apply", "--dry-run", "--kubeconfig", kcs]);
    assert_eq!(code, 0, "{dry}");
    assert!(live_object(&server, "", "Namespace", "", "shop").is_none(), "the dry run created the namespace");
    assert!(
        live_object(&server, "apiextensions.k8s.io", "CustomResourceDefinition", "", "widgets.example.com").is_none()
    );
    assert_eq!(result_of(&dry, WIDGET)["action"], "created");
    assert!(result_of(&dry, WIDGET)["reason"]
        .as_str()
        .unwrap()
        .contains("CustomResourceDefinition is created by this restore first"));
    assert_eq!(result_of(&dry, RS)["action"], "skipped");

    let (code, report) = env.json_code(&["restore", &snap, "--apply", "--kubeconfig", kcs]);
    assert_eq!(code, 0, "{report}");
    // Definitions, then namespaces, then configuration, then workloads and custom resources.
    let order: Vec<String> =
        report["results"].as_array().unwrap().iter().filter(|r| r["action"] == "created").map(ident).collect();
    let pos = |id: &str| order.iter().position(|x| x == id).unwrap_or_else(|| panic!("{id} not created: {order:?}"));
    assert!(pos(CRD) < pos("/Namespace//shop"));
    assert!(pos("/Namespace//shop") < pos(CM));
    assert!(pos(CM) < pos(DEPLOY));
    assert!(pos("/ServiceAccount/shop/web") < pos(DEPLOY));
    assert_eq!(result_of(&report, RS)["action"], "skipped");
    let widget = live_object(&server, "example.com", "Widget", "shop", "blue").expect("the custom resource");
    assert_eq!(widget["spec"], json!({"color": "blue", "size": 3}));
    let svc = live_object(&server, "", "Service", "shop", "web").unwrap();
    assert!(svc["spec"].get("clusterIP").is_none(), "{svc}");
    assert!(result_of(&report, "/Service/shop/web")["notes"].to_string().contains("clusterIP"));
    let deploy = live_object(&server, "apps", "Deployment", "shop", "web").unwrap();
    assert!(deploy["metadata"].get("annotations").is_none(), "{deploy}");
    assert_eq!(deploy["metadata"]["managedFields"][0]["manager"], "kubesnap");
    assert_eq!(deploy["metadata"]["managedFields"][0]["operation"], "Apply");

    // Nothing differs now; a second restore changes nothing.
    let (code, live) = env.json_code(&["diff", &snap, "--live", "--kubeconfig", kcs]);
    assert_eq!((code, &live["added"], &live["removed"], &live["modified"]), (0, &json!([]), &json!([]), &json!([])));
    let (_, again) = env.json_code(&["restore", &snap, "--apply", "--existing", "update", "--kubeconfig", kcs]);
    assert_eq!(again["counts"]["created"], 0);
    assert_eq!(again["counts"]["updated"], 0, "{again}");

    // An owned object restored on request points at its restored owner.
    let (code, owned) = env.json_code(&[
        "restore",
        &snap,
        "rs/web-5d8f",
        "-n",
        "shop",
        "--apply",
        "--include-owned",
        "--kubeconfig",
        kcs,
    ]);
    assert_eq!(code, 0, "{owned}");
    let rs = live_object(&server, "apps", "ReplicaSet", "shop", "web-5d8f").unwrap();
    assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], deploy["metadata"]["uid"]);
    server.stop();
}

#[test]
fn one_resource_is_put_back_and_diff_live_shows_exactly_the_change() {
    let (env, server, kc, snap) = shop_snapshot();
    let kcs = kc.to_str().unwrap();
    kubectl(&kc, &["-n", "shop", "set", "image", "deploy/web", "web=nginx:9"]);
    kubectl(&kc, &["-n", "shop", "patch", "cm", "web-config", "-p", r#"{"data":{"mode":"slow"}}"#]);
    kubectl(&kc, &["-n", "shop", "patch", "secret", "web-db", "-p", r#"{"data":{"password":"c2VjcmV0Mg=="}}"#]);

    let (code, d) = env.json_code(&["diff", &snap, "--live", "-p", "--kubeconfig", kcs]);
    assert_eq!(code, 11);
    assert_eq!(idents(&d["modified"]), vec![CM, SECRET, DEPLOY]);
    let changes = d["changes"].as_array().unwrap();
    let deploy = changes.iter().find(|c| ident(c) == DEPLOY).unwrap();
    assert_eq!(
        deploy["fields"],
        json!([{"path": "spec.template.spec.containers[0].image", "op": "changed", "old": "nginx:1.27", "new": "nginx:9"}])
    );
    assert!(
        !d.to_string().contains("c2VjcmV0Mg==") && !d.to_string().contains("aHVudGVyMg=="),
        "secret values shown: {d}"
    );
    // Named resources only.
    let (_, one) = env.json_code(&["diff", &snap, "--live", "deploy/web", "-n", "shop", "--kubeconfig", kcs]);
    assert_eq!(idents(&one["modified"]), vec![DEPLOY.to_string()]);

    // The dry run shows the change; the Secret's values stay hidden unless asked.
    let (code, dry) = env.json_code(&[
        "restore",
        &snap,
        "deploy/web",
        "secret/web-db",
        "-n",
        "shop",
        "--apply",
        "--dry-run",
        "--existing",
        "update",
        "--force-conflicts",
        "--kubeconfig",
        kcs,
    ]);
    assert_eq!(code, 0, "{dry}");
    assert_eq!(result_of(&dry, DEPLOY)["action"], "updated");
    assert_eq!(result_of(&dry, DEPLOY)["changes"][0]["path"], "spec.template.spec.containers[0].image");
    assert!(!dry.to_string().contains("c2VjcmV0Mg==") && !dry.to_string().contains("aHVudGVyMg=="), "{dry}");
    let (_, shown) = env.json_code(&[
        "restore",
        &snap,
        "secret/web-db",
        "-n",
        "shop",
        "--apply",
        "--dry-run",
        "--existing",
        "update",
        "--force-conflicts",
        "--show-secrets",
        "--kubeconfig",
        kcs,
    ]);
    assert!(shown.to_string().contains("aHVudGVyMg=="), "{shown}");
    assert_eq!(
        live_object(&server, "apps", "Deployment", "shop", "web").unwrap()["spec"]["template"]["spec"]["containers"][0]
            ["image"],
        "nginx:9"
    );

    // The default leaves existing objects alone; over another manager's field it is a conflict.
    let (code, skip) = env.json_code(&["restore", &snap, "deploy/web", "-n", "shop", "--apply", "--kubeconfig", kcs]);
    assert_eq!((code, &result_of(&skip, DEPLOY)["action"]), (0, &json!("skipped")));
    let (code, conflict) = env.json_code(&[
        "restore",
        &snap,
        "deploy/web",
        "-n",
        "shop",
        "--apply",
        "--existing",
        "update",
        "--kubeconfig",
        kcs,
    ]);
    assert_eq!(code, 10);
    let reason = result_of(&conflict, DEPLOY)["reason"].as_str().unwrap().to_string();
    assert!(
        reason.contains("409") && reason.contains("kubectl-set") && reason.contains("--force-conflicts"),
        "{reason}"
    );
    let (code, fixed) = env.json_code(&[
        "restore",
        &snap,
        "deploy/web",
        "-n",
        "shop",
        "--apply",
        "--existing",
        "update",
        "--force-conflicts",
        "--kubeconfig",
        kcs,
    ]);
    assert_eq!((code, &result_of(&fixed, DEPLOY)["action"]), (0, &json!("updated")), "{fixed}");
    assert_eq!(fixed["results"].as_array().unwrap().len(), 1);

    // Exactly that Deployment is back; the other changes remain.
    let (_, d) = env.json_code(&["diff", &snap, "--live", "--kubeconfig", kcs]);
    assert_eq!(idents(&d["modified"]), vec![CM, SECRET]);
    server.stop();
}

#[test]
fn a_namespace_map_moves_objects_and_their_bindings() {
    let (env, server, kc, snap) = shop_snapshot();
    let kcs = kc.to_str().unwrap();
    let (code, r) = env.json_code(&[
        "restore",
        &snap,
        "-n",
        "shop",
        "--namespace-map",
        "shop=shop-copy",
        "--apply",
        "--kubeconfig",
        kcs,
    ]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(result_of(&r, CM)["targetNamespace"], "shop-copy");
    assert!(live_object(&server, "", "Namespace", "", "shop-copy").is_some());
    assert_eq!(live_object(&server, "", "ConfigMap", "shop-copy", "web-config").unwrap()["data"]["mode"], "fast");
    assert!(live_object(&server, "example.com", "Widget", "shop-copy", "blue").is_some());
    let rb = live_object(&server, "rbac.authorization.k8s.io", "RoleBinding", "shop-copy", "web-reader").unwrap();
    assert_eq!(rb["subjects"][0]["namespace"], "shop-copy");
    // The original namespace is untouched.
    assert_eq!(
        live_object(&server, "rbac.authorization.k8s.io", "RoleBinding", "shop", "web-reader").unwrap()["subjects"][0]
            ["namespace"],
        "shop"
    );
    // The same clean-up and map, as files.
    let out =
        env.ok(&["restore", &snap, "cm/web-config", "-n", "shop", "--namespace-map", "shop=elsewhere", "--stdout"]);
    assert!(out.contains("namespace: elsewhere"), "{out}");
    let out = env.ok(&["restore", &snap, "svc/web", "-n", "shop", "--clean", "--stdout"]);
    assert!(!out.contains("clusterIP") && !out.contains("uid:") && !out.contains("resourceVersion"), "{out}");
    server.stop();
}

#[test]
fn failures_are_reported_and_the_rest_is_restored() {
    let (env, source, _, snap) = shop_snapshot();
    source.stop();
    let (server, kc) = test_server(&env, None, "target");
    let kcs = kc.to_str().unwrap();
    // A Deployment whose selector differs (immutable), and ConfigMaps that always fail.
    let old = env.path("old-web.yaml");
    std::fs::write(&old, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  selector:\n    matchLabels:\n      app: web-old\n  template:\n    metadata:\n      labels:\n        app: web-old\n    spec:\n      containers:\n      - name: web\n        image: nginx:1\n").unwrap();
    kubectl(&kc, &["create", "-f", old.to_str().unwrap()]);
    server.faults().add(Fault::new(FaultAction::InternalError).on("", "configmaps").verb("patch"));
    let (code, r) = env.json_code(&[
        "restore",
        &snap,
        "--apply",
        "--existing",
        "update",
        "--force-conflicts",
        "--retries",
        "2",
        "--kubeconfig",
        kcs,
    ]);
    assert_eq!(code, 10, "{r}");
    let failed = by_action(&r, "failed");
    assert_eq!(failed, [CM.to_string(), DEPLOY.to_string()].into_iter().collect());
    assert!(result_of(&r, CM)["reason"].as_str().unwrap().starts_with("500"), "{r}");
    let why = result_of(&r, DEPLOY)["reason"].as_str().unwrap();
    assert!(
        why.contains("field is immutable") && why.contains("spec.selector") && why.contains("delete the object"),
        "{why}"
    );
    // Nothing of the Deployment was half-applied; everything else is there.
    assert_eq!(
        live_object(&server, "apps", "Deployment", "shop", "web").unwrap()["spec"]["template"]["spec"]["containers"][0]
            ["image"],
        "nginx:1"
    );
    for (g, k, n) in [
        ("", "Secret", "web-db"),
        ("", "Service", "web"),
        ("example.com", "Widget", "blue"),
        ("rbac.authorization.k8s.io", "RoleBinding", "web-reader"),
    ] {
        assert!(live_object(&server, g, k, "shop", n).is_some(), "{k}/{n}");
    }
    let text = env.run(&["restore", &snap, "--apply", "--existing", "update", "--retries", "1", "--kubeconfig", kcs]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("failed") && l.contains("ConfigMap/web-config -n shop")), "{stdout}");
    server.stop();
}

#[test]
fn an_api_version_the_cluster_no_longer_serves_is_converted_or_named() {
    let env = Env::new();
    let src = env.path("src");
    write(&src, "ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n");
    write(&src, "hpa.yaml", "apiVersion: autoscaling/v2beta2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  scaleTargetRef:\n    apiVersion: apps/v1\n    kind: Deployment\n    name: web\n  minReplicas: 1\n  maxReplicas: 4\n");
    write(
        &src,
        "gadget.yaml",
        "apiVersion: gadgets.example.org/v1\nkind: Gadget\nmetadata:\n  name: g\n  namespace: shop\nspec: {}\n",
    );
    let snap = env.snapshot(&src, "2026-01-01T00:00:00Z", &[]);
    let (server, kc) = test_server(&env, None, "target");
    let (code, r) = env.json_code(&["restore", &snap, "--apply", "--kubeconfig", kc.to_str().unwrap()]);
    assert_eq!(code, 10, "{r}");
    let hpa = result_of(&r, "autoscaling/HorizontalPodAutoscaler/shop/web");
    assert_eq!((&hpa["action"], &hpa["apiVersion"]), (&json!("created"), &json!("autoscaling/v2")), "{hpa}");
    assert!(
        hpa["notes"].to_string().contains("stored as autoscaling/v2beta2, which this cluster does not serve"),
        "{hpa}"
    );
    assert_eq!(
        live_object(&server, "autoscaling", "HorizontalPodAutoscaler", "shop", "web").unwrap()["spec"]["maxReplicas"],
        4
    );
    let gadget = result_of(&r, "gadgets.example.org/Gadget/shop/g");
    assert!(
        gadget["reason"].as_str().unwrap().contains("Gadget.gadgets.example.org is not served by this cluster"),
        "{gadget}"
    );
    server.stop();
}

/// Against a real cluster: `cargo test --test integration real_cluster_restore -- --ignored`,
/// with KUBECONFIG pointing at a disposable cluster (`kind create cluster` or `k3d cluster
/// create`). Creates a namespace with an application, snapshots it, deletes the namespace,
/// restores it (the real API server's defaulting, validation, cluster IP allocation and
/// controllers apply), and checks that `diff --live` shows nothing; then deletes it again.
#[test]
#[ignore = "needs a real, disposable cluster (kind or k3d) and KUBECONFIG"]
fn real_cluster_restore() {
    let env = Env::new();
    let kc = std::env::var("KUBECONFIG").map(PathBuf::from).expect("KUBECONFIG");
    let src = env.path("src");
    shop(&src);
    std::fs::remove_file(src.join("rs.yaml")).unwrap();
    kubectl(&kc, &["apply", "-f", src.join("ns.yaml").to_str().unwrap()]);
    kubectl(&kc, &["apply", "-f", src.join("crd.yaml").to_str().unwrap()]);
    kubectl(&kc, &["wait", "--for=condition=Established", "crd/widgets.example.com"]);
    kubectl(&kc, &["apply", "-f", src.to_str().unwrap()]);
    let r = env.json(&["snapshot", "-n", "shop", "--cluster", "real", "-q"]);
    let snap = r["id"].as_str().unwrap();
    kubectl(&kc, &["delete", "namespace", "shop", "--wait=true"]);
    let (code, dry) = env.json_code(&["restore", snap, "-n", "shop", "--apply", "--dry-run"]);
    assert_eq!(code, 0, "{dry}");
    let (code, report) = env.json_code(&["restore", snap, "-n", "shop", "--apply"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(by_action(&dry, "created"), by_action(&report, "created"));
    let (code, diff) = env.json_code(&["diff", snap, "--live", "-p"]);
    assert_eq!(code, 0, "{diff}");
    kubectl(&kc, &["delete", "namespace", "shop", "--wait=false"]);
    kubectl(&kc, &["delete", "crd", "widgets.example.com", "--wait=false"]);
}

#[test]
fn diff_live_follows_the_snapshot_scope_and_redaction() {
    let (env, server, kc, _) = shop_snapshot();
    let kcs = kc.to_str().unwrap();
    let other = env.path("other.yaml");
    std::fs::write(&other, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: elsewhere\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: elsewhere\ndata:\n  k: v\n").unwrap();
    kubectl(&kc, &["apply", "-f", other.to_str().unwrap()]);
    // A namespace scope: other namespaces are not "added".
    let ns = env.json(&["snapshot", "--kubeconfig", kcs, "--cluster", "ns", "-n", "shop", "-q"]);
    let ns_id = ns["id"].as_str().unwrap();
    let (code, d) = env.json_code(&["diff", ns_id, "--live", "--kubeconfig", kcs]);
    assert_eq!((code, &d["added"], &d["removed"], &d["modified"]), (0, &json!([]), &json!([]), &json!([])), "{d}");
    // The first object of a type the snapshot had none of shows as added.
    let np = env.path("np.yaml");
    std::fs::write(&np, "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: deny\n  namespace: shop\nspec:\n  podSelector: {}\n").unwrap();
    kubectl(&kc, &["apply", "-f", np.to_str().unwrap()]);
    let (code, d) = env.json_code(&["diff", ns_id, "--live", "--kubeconfig", kcs]);
    assert_eq!(code, 11);
    assert_eq!(idents(&d["added"]), vec!["networking.k8s.io/NetworkPolicy/shop/deny"]);
    // A snapshot without Secret values: the Secret is not restored, and not a difference.
    let red = env.json(&["snapshot", "--kubeconfig", kcs, "--cluster", "red", "-n", "shop", "--redact-secrets", "-q"]);
    let red_id = red["id"].as_str().unwrap();
    let (_, d) = env.json_code(&["diff", red_id, "--live", "--kubeconfig", kcs]);
    assert_eq!(d["modified"], json!([]), "{d}");
    let (code, r) = env.json_code(&[
        "restore",
        red_id,
        "secret/web-db",
        "-n",
        "shop",
        "--apply",
        "--existing",
        "update",
        "--force-conflicts",
        "--kubeconfig",
        kcs,
    ]);
    assert_eq!(code, 0, "{r}");
    assert_eq!(result_of(&r, SECRET)["action"], "skipped");
    assert!(result_of(&r, SECRET)["reason"].as_str().unwrap().contains("--redact-secrets"));
    assert_eq!(live_object(&server, "", "Secret", "shop", "web-db").unwrap()["data"]["password"], "aHVudGVyMg==");
    let out = env.ok(&["restore", red_id, "-n", "shop", "--clean", "--stdout"]);
    assert!(!out.contains("kind: Secret"), "{out}");
    server.stop();
}

//! Loading fixture folders: objects served as given, types implied or defined by CRDs.

mod common;

use common::get;
use kubesnap_testserver::{Options, TestServer};
use serde_json::json;

fn write(dir: &std::path::Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(p, text).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn fixtures_are_served_as_given() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    write(d, "cluster/Namespace.core/apps.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n  uid: 11111111-2222-4333-8444-555555555555\n  resourceVersion: '700'\n  creationTimestamp: '2026-01-01T00:00:00Z'\nstatus:\n  phase: Active\n");
    write(d, "namespaces/apps/ConfigMap.core/cfg.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: apps\ndata:\n  mode: '0644'\n  flag: 'yes'\nbinaryData: {}\n");
    write(d, "namespaces/apps/Secret.core/s.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: apps}\ntype: Opaque\n---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata: {name: sa, namespace: apps}\n");
    write(d, "namespaces/apps/Deployment.apps/web.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: apps, generation: 4}\nspec:\n  template:\n    spec:\n      volumes:\n      - name: v\n        secret: {secretName: s, defaultMode: 0644}\nstatus: {readyReplicas: 3}\n");
    write(d, "cluster/CustomResourceDefinition.apiextensions.k8s.io/gadgets.example.io.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: gadgets.example.io}\nspec:\n  group: example.io\n  scope: Cluster\n  names: {kind: Gadget, plural: gadgets, shortNames: [gd]}\n  versions:\n  - {name: v1, served: true, storage: true}\n");
    // The CR comes first in path order: CRDs are loaded first anyway.
    write(
        d,
        "cluster/A.example.io/g.json",
        r#"{"apiVersion": "example.io/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {"x": 1}}"#,
    );
    write(
        d,
        "namespaces/apps/Policy.kyverno.io/p.yaml",
        "apiVersion: kyverno.io/v1\nkind: Policy\nmetadata: {name: p, namespace: apps}\nspec: {}\n",
    );
    write(d, "cluster/Broken/bad.yaml", "apiVersion: v1\nkind: [\n");
    write(d, "cluster/Broken/noname.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n");
    write(d, "README.txt", "not a manifest");

    let s = TestServer::start(Options { fixtures: Some(d.to_path_buf()), ..Options::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    let report = s.load_report();
    assert_eq!(report.loaded, 8);
    assert_eq!(report.skipped.len(), 2, "{:?}", report.skipped);
    let a = s.addr();

    let ns = get(a, "/api/v1/namespaces/apps").json();
    assert_eq!(
        (ns["metadata"]["uid"].as_str(), ns["metadata"]["resourceVersion"].as_str()),
        (Some("11111111-2222-4333-8444-555555555555"), Some("700"))
    );
    assert_eq!(ns["metadata"].get("labels"), None, "fixtures get no defaults");
    let cm = get(a, "/api/v1/namespaces/apps/configmaps/cfg").json();
    assert_eq!(cm["data"], json!({"mode": "0644", "flag": "yes"}));
    assert!(cm["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36), "assigned where absent");
    let web = get(a, "/apis/apps/v1/namespaces/apps/deployments/web").json();
    assert_eq!(web["spec"]["template"]["spec"]["volumes"][0]["secret"]["defaultMode"], 420, "0644 is octal");
    assert_eq!((web["status"]["readyReplicas"].as_i64(), web["metadata"]["generation"].as_i64()), (Some(3), Some(4)));
    assert_eq!(get(a, "/api/v1/namespaces/apps/serviceaccounts/sa").status, 200, "List items are loaded");
    assert_eq!(get(a, "/apis/example.io/v1/gadgets/g").json()["spec"]["x"], 1);
    let implied = get(a, "/apis/kyverno.io/v1").json();
    assert_eq!(implied["resources"][0]["name"], "policies");
    assert_eq!(implied["resources"][0]["namespaced"], true);
    assert_eq!(get(a, "/apis/kyverno.io/v1/namespaces/apps/policies/p").status, 200);

    // Writes after the fixtures get resourceVersions above theirs.
    let created = common::post(a, "/api/v1/namespaces/apps/configmaps", &common::configmap("apps", "new")).json();
    let rv: u64 = created["metadata"]["resourceVersion"].as_str().and_then(|r| r.parse().ok()).unwrap_or(0);
    assert!(rv > 700, "{rv}");
}

#[test]
fn a_missing_fixture_folder_is_an_error() {
    let err = TestServer::start(Options { fixtures: Some("/nonexistent/kubesnap".into()), ..Options::default() }).err();
    assert!(err.is_some_and(|e| e.to_string().contains("/nonexistent/kubesnap")));
}

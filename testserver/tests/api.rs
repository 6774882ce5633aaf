//! The API's semantics through HTTP: CRUD, lists and pagination consistency, selectors,
//! watches, patches, server-side apply, CRDs, subresources, finalizers, errors.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{configmap, delete, get, patch, post, put, request, Watch};
use kubesnap_testserver::{Options, TestServer};
use serde_json::{json, Value};

fn server() -> TestServer {
    TestServer::start(Options { bookmark_interval: Duration::from_millis(200), ..Options::default() })
        .unwrap_or_else(|e| panic!("{e}"))
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|a| a.iter().map(|i| i["metadata"]["name"].as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn new_cluster_has_three_namespaces() {
    let s = server();
    let list = get(s.addr(), "/api/v1/namespaces").json();
    assert_eq!(names(&list), ["default", "kube-public", "kube-system"]);
    let ns = &list["items"][0];
    assert_eq!(ns.get("kind"), None, "built-in list items carry no kind");
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "default");
}

#[test]
fn create_get_update_delete() {
    let s = server();
    let a = s.addr();
    let created = post(a, CMS, &configmap("default", "one"));
    assert_eq!(created.status, 201);
    let obj = created.json();
    assert_eq!(obj["kind"], "ConfigMap");
    assert_eq!(obj["metadata"]["uid"].as_str().map(str::len), Some(36));
    let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
    assert_eq!(get(a, &format!("{CMS}/one")).json(), obj);

    let cases: &[(&str, &str, Value, u16, &str)] = &[
        ("POST", CMS, configmap("default", "one"), 409, "AlreadyExists"),
        ("POST", "/api/v1/namespaces/nowhere/configmaps", configmap("nowhere", "x"), 404, "NotFound"),
        ("POST", CMS, configmap("other", "x"), 400, "BadRequest"),
        ("POST", CMS, json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}), 422, "Invalid"),
        ("POST", CMS, json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}), 400, "BadRequest"),
        ("PUT", "/api/v1/namespaces/default/configmaps/missing", configmap("default", "missing"), 404, "NotFound"),
        ("PUT", "/api/v1/namespaces/default/configmaps/one", configmap("default", "two"), 400, "BadRequest"),
        (
            "PUT",
            "/api/v1/namespaces/default/configmaps/one",
            json!({"metadata": {"name": "one", "uid": "other"}}),
            409,
            "Conflict",
        ),
        ("POST", CMS, json!({"metadata": {"name": "rv", "resourceVersion": "5"}}), 500, ""),
    ];
    for (method, path, body, code, reason) in cases {
        let r = request(a, method, path, "application/json", body.to_string().as_bytes());
        assert_eq!(
            (r.status, r.json()["reason"].as_str().unwrap_or_default()),
            (*code, *reason),
            "{method} {path} {body}"
        );
        assert_eq!(r.json()["kind"], "Status");
    }

    let mut stale = obj.clone();
    stale["metadata"]["resourceVersion"] = json!("1");
    stale["data"] = json!({"k": "stale"});
    assert_eq!(put(a, &format!("{CMS}/one"), &stale).json()["reason"], "Conflict");

    let mut fresh = obj.clone();
    fresh["data"] = json!({"k": "new"});
    let updated = put(a, &format!("{CMS}/one"), &fresh).json();
    assert_eq!(updated["data"]["k"], "new");
    assert_ne!(updated["metadata"]["resourceVersion"].as_str(), Some(rv.as_str()));
    assert_eq!(updated["metadata"]["uid"], obj["metadata"]["uid"]);

    // A no-op update does not bump the resourceVersion.
    let again = put(a, &format!("{CMS}/one"), &updated).json();
    assert_eq!(again["metadata"]["resourceVersion"], updated["metadata"]["resourceVersion"]);

    let gone = delete(a, &format!("{CMS}/one"));
    assert_eq!(gone.status, 200);
    assert_eq!(gone.json()["metadata"]["name"], "one");
    assert_eq!(get(a, &format!("{CMS}/one")).status, 404);
    assert_eq!(delete(a, &format!("{CMS}/one")).status, 404);
}

#[test]
fn generate_name_generation_and_status_subresource() {
    let s = server();
    let a = s.addr();
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generateName": "web-", "namespace": "default"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
        "status": {"replicas": 9}});
    let created = post(a, "/apis/apps/v1/namespaces/default/deployments", &deploy).json();
    let name = created["metadata"]["name"].as_str().unwrap_or_default().to_string();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created.get("status"), None, "status is dropped on create");
    let path = format!("/apis/apps/v1/namespaces/default/deployments/{name}");

    // Status through /status; ignored on the main resource; spec changes bump generation.
    let with_status = put(
        a,
        &format!("{path}/status"),
        &json!({"metadata": {"name": name}, "status": {"replicas": 1}, "spec": {"replicas": 50}}),
    )
    .json();
    assert_eq!(
        (
            with_status["status"]["replicas"].clone(),
            with_status["spec"]["replicas"].clone(),
            with_status["metadata"]["generation"].clone()
        ),
        (json!(1), json!(1), json!(1))
    );
    let p = patch(a, &path, "application/merge-patch+json", r#"{"spec": {"replicas": 3}, "status": {"replicas": 7}}"#)
        .json();
    assert_eq!(
        (p["spec"]["replicas"].clone(), p["status"]["replicas"].clone(), p["metadata"]["generation"].clone()),
        (json!(3), json!(1), json!(2))
    );
    let meta_only = patch(a, &path, "application/merge-patch+json", r#"{"metadata": {"labels": {"x": "y"}}}"#).json();
    assert_eq!(meta_only["metadata"]["generation"], 2);

    // Scale.
    let scale = get(a, &format!("{path}/scale")).json();
    assert_eq!(
        (scale["kind"].as_str(), scale["spec"]["replicas"].as_i64(), scale["status"]["selector"].as_str()),
        (Some("Scale"), Some(3), Some("app=web"))
    );
    let scaled =
        patch(a, &format!("{path}/scale"), "application/merge-patch+json", r#"{"spec": {"replicas": 5}}"#).json();
    assert_eq!(scaled["spec"]["replicas"], 5);
    assert_eq!(get(a, &path).json()["spec"]["replicas"], 5);
    assert_eq!(get(a, &format!("{path}/frobnicate")).status, 404);
}

#[test]
fn pagination_selectors_and_resource_versions() {
    let s = server();
    let a = s.addr();
    for i in 0..25 {
        let mut cm = configmap("default", &format!("cm-{i:02}"));
        cm["metadata"]["labels"] = json!({"parity": if i % 2 == 0 { "even" } else { "odd" }});
        post(a, CMS, &cm);
    }
    post(a, "/api/v1/namespaces/kube-system/configmaps", &configmap("kube-system", "sys"));

    let first = get(a, &format!("{CMS}?limit=10")).json();
    assert_eq!(names(&first).len(), 10);
    assert_eq!(first["metadata"]["remainingItemCount"], 15);
    let token = first["metadata"]["continue"].as_str().unwrap_or_default().to_string();
    let second = get(a, &format!("{CMS}?limit=10&continue={token}")).json();
    assert_eq!(names(&second)[0], "cm-10");
    assert_eq!(second["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"]);

    let cases: &[(&str, usize)] = &[
        ("labelSelector=parity%3Deven", 13),
        ("labelSelector=parity%21%3Deven", 12),
        ("labelSelector=parity+in+%28odd%29", 12),
        ("labelSelector=%21parity", 0),
        ("fieldSelector=metadata.name%3Dcm-03", 1),
        ("fieldSelector=metadata.name%21%3Dcm-03", 24),
        ("labelSelector=parity%3Deven&fieldSelector=metadata.name%3Dcm-03", 0),
    ];
    for (q, want) in cases {
        assert_eq!(names(&get(a, &format!("{CMS}?{q}")).json()).len(), *want, "{q}");
    }
    let all = get(a, "/api/v1/configmaps?fieldSelector=metadata.namespace%3Dkube-system").json();
    assert_eq!(names(&all), ["sys"]);
    assert_eq!(get(a, &format!("{CMS}?fieldSelector=data.k%3Dx")).status, 400);
    assert_eq!(get(a, &format!("{CMS}?labelSelector=a+in+b")).status, 400);
    assert_eq!(get(a, &format!("{CMS}?continue=bm9wZQ")).status, 400);
    assert_eq!(get(a, &format!("{CMS}?limit=1&continue={token}&resourceVersion=5")).status, 400);

    // Selector pages: limit counts matches; the token resumes after the last one.
    let even = get(a, &format!("{CMS}?labelSelector=parity%3Deven&limit=5")).json();
    assert_eq!(names(&even), ["cm-00", "cm-02", "cm-04", "cm-06", "cm-08"]);
    assert_eq!(even["metadata"].get("remainingItemCount"), None);

    // An exact list at an old resourceVersion sees the old state.
    let rv = first["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();
    delete(a, &format!("{CMS}/cm-00"));
    let old = get(a, &format!("{CMS}?resourceVersion={rv}&resourceVersionMatch=Exact")).json();
    assert_eq!(names(&old).len(), 25);
    assert_eq!(names(&get(a, CMS).json()).len(), 24);

    // Compaction makes old tokens and exact reads expire, with 410.
    s.store().compact();
    let expired = get(a, &format!("{CMS}?limit=10&continue={token}"));
    assert_eq!((expired.status, expired.json()["reason"].as_str()), (410, Some("Expired")));
    assert_eq!(get(a, &format!("{CMS}?resourceVersion={rv}&resourceVersionMatch=Exact")).status, 410);
}

/// Every object that existed when a paginated list started is seen exactly once, and none
/// created during it, however many objects are created meanwhile.
#[test]
fn pagination_is_consistent_while_objects_are_created() {
    let s = server();
    let a = s.addr();
    for i in 0..200 {
        post(a, CMS, &configmap("default", &format!("before-{i:03}")));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) && n < 2000 {
                // Names sort before, between and after the existing ones.
                for prefix in ["a", "before-050x", "z"] {
                    post(a, CMS, &configmap("default", &format!("{prefix}-{n:04}")));
                }
                n += 1;
            }
            n
        })
    };
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut token = String::new();
    let mut pages = 0;
    let mut list_rv = None;
    loop {
        let path = if token.is_empty() { format!("{CMS}?limit=7") } else { format!("{CMS}?limit=7&continue={token}") };
        let page = get(a, &path).json();
        let rv = page["metadata"]["resourceVersion"].clone();
        assert_eq!(*list_rv.get_or_insert(rv.clone()), rv, "every page comes from the same snapshot");
        for n in names(&page) {
            *seen.entry(n).or_default() += 1;
        }
        pages += 1;
        std::thread::sleep(Duration::from_millis(2));
        match page["metadata"]["continue"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap_or(0);
    assert!(written > 0 && pages >= 29, "writes: {written}, pages: {pages}");
    let expected: BTreeMap<String, usize> = (0..200).map(|i| (format!("before-{i:03}"), 1)).collect();
    let during: Vec<&String> = seen.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert_eq!(seen.len() - during.len(), 200);
    assert!(
        seen.values().all(|c| *c == 1),
        "duplicates: {:?}",
        seen.iter().filter(|(_, c)| **c > 1).collect::<Vec<_>>()
    );
    // Objects created before the first page are the only ones (a write between the first
    // creates and the first page is impossible here: the writer starts after them, but it may
    // have created some before the first page was read).
    let first_rv: u64 = list_rv.and_then(|v| v.as_str().and_then(|s| s.parse().ok())).unwrap_or(0);
    for name in during {
        let obj = get(a, &format!("{CMS}/{name}")).json();
        let rv: u64 = obj["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
        assert!(rv <= first_rv, "{name} (rv {rv}) was created after the list's snapshot {first_rv}");
    }
}

#[test]
fn watches_resume_bookmark_filter_and_expire() {
    let s = server();
    let a = s.addr();
    post(a, CMS, &configmap("default", "pre"));
    let rv0 = get(a, CMS).json()["metadata"]["resourceVersion"].as_str().unwrap_or_default().to_string();

    // Without a resourceVersion: the current objects as ADDED, then changes.
    let mut w = Watch::open(a, &format!("{CMS}?watch=true&allowWatchBookmarks=true"));
    assert_eq!(w.status, 200);
    let first = w.next().unwrap_or_default();
    assert_eq!((first["type"].as_str(), first["object"]["metadata"]["name"].as_str()), (Some("ADDED"), Some("pre")));
    assert_eq!(first["object"]["kind"], "ConfigMap");
    post(a, CMS, &configmap("default", "new"));
    let added = w.until("ADDED");
    assert_eq!(added["object"]["metadata"]["name"], "new");
    patch(a, &format!("{CMS}/new"), "application/merge-patch+json", r#"{"data":{"k":"v2"}}"#);
    assert_eq!(w.until("MODIFIED")["object"]["data"]["k"], "v2");
    delete(a, &format!("{CMS}/new"));
    assert_eq!(w.until("DELETED")["object"]["metadata"]["name"], "new");
    let bookmark = w.until("BOOKMARK");
    assert!(bookmark["object"]["metadata"]["resourceVersion"].as_str().is_some());
    assert_eq!(bookmark["object"]["kind"], "ConfigMap");

    // Resuming from a resourceVersion replays what came after it, and only that.
    let mut resumed = Watch::open(a, &format!("{CMS}?watch=1&resourceVersion={rv0}&timeoutSeconds=2"));
    let kinds: Vec<String> = std::iter::from_fn(|| resumed.next())
        .map(|e| {
            format!(
                "{} {}",
                e["type"].as_str().unwrap_or_default(),
                e["object"]["metadata"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(kinds, ["ADDED new", "MODIFIED new", "DELETED new"], "a timeout ends the stream");

    // Selectors: an object leaving the selector is DELETED for the watcher, entering is ADDED.
    let mut sel = Watch::open(
        a,
        &format!("{CMS}?watch=1&resourceVersion={}&labelSelector=team%3Da", s.store().resource_version()),
    );
    let mut cm = configmap("default", "sel");
    cm["metadata"]["labels"] = json!({"team": "b"});
    post(a, CMS, &cm);
    patch(a, &format!("{CMS}/sel"), "application/merge-patch+json", r#"{"metadata":{"labels":{"team":"a"}}}"#);
    patch(a, &format!("{CMS}/sel"), "application/merge-patch+json", r#"{"metadata":{"labels":{"team":"c"}}}"#);
    assert_eq!(sel.next().map(|e| e["type"].clone()), Some(json!("ADDED")));
    assert_eq!(sel.next().map(|e| e["type"].clone()), Some(json!("DELETED")));

    // The initial-events protocol of WatchList clients.
    let mut wl = Watch::open(
        a,
        &format!("{CMS}?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan"),
    );
    let mut initial = Vec::new();
    let end = loop {
        let e = wl.next().unwrap_or_default();
        if e["type"] == "BOOKMARK" {
            break e;
        }
        initial.push(e["object"]["metadata"]["name"].as_str().unwrap_or_default().to_string());
    };
    assert_eq!(initial, ["pre", "sel"]);
    assert_eq!(end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");

    // A watch of one object, the old path form.
    let mut one = Watch::open(
        a,
        &format!("/api/v1/watch/namespaces/default/configmaps/sel?resourceVersion={}", s.store().resource_version()),
    );
    patch(a, &format!("{CMS}/pre"), "application/merge-patch+json", r#"{"data":{"k":"other"}}"#);
    patch(a, &format!("{CMS}/sel"), "application/merge-patch+json", r#"{"data":{"k":"mine"}}"#);
    assert_eq!(one.next().map(|e| e["object"]["data"]["k"].clone()), Some(json!("mine")));

    // An idle watch is not expired by a compaction of what it did not watch.
    let secrets = "/api/v1/namespaces/default/secrets";
    let mut idle = Watch::open(
        a,
        &format!("{secrets}?watch=1&allowWatchBookmarks=true&resourceVersion={}", s.store().resource_version()),
    );
    let noise: u64 = post(a, CMS, &configmap("default", "noise")).json()["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    // A bookmark at or past the noise proves the watch has moved past it.
    while idle.until("BOOKMARK")["object"]["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|r| r.parse::<u64>().ok())
        .unwrap_or(0)
        < noise
    {}
    s.store().compact();
    post(a, secrets, &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}));
    assert_eq!(idle.until("ADDED")["object"]["metadata"]["name"], "s");

    // Too old: one ERROR event with a 410 Status.
    s.store().compact();
    let mut old = Watch::open(a, &format!("{CMS}?watch=1&resourceVersion={rv0}"));
    let e = old.next().unwrap_or_default();
    assert_eq!(
        (e["type"].as_str(), e["object"]["code"].as_i64(), e["object"]["reason"].as_str()),
        (Some("ERROR"), Some(410), Some("Expired"))
    );
}

#[test]
fn patches_of_every_kind() {
    let s = server();
    let a = s.addr();
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "nginx"}]}});
    post(a, "/api/v1/namespaces/default/pods", &pod);
    let path = "/api/v1/namespaces/default/pods/p";
    let cases: &[(&str, &str, &str, Value)] = &[
        (
            "application/strategic-merge-patch+json",
            r#"{"spec":{"containers":[{"name":"b","image":"nginx:2"}]}}"#,
            "/spec/containers",
            json!([{"name": "a", "image": "busybox"}, {"name": "b", "image": "nginx:2"}]),
        ),
        ("application/merge-patch+json", r#"{"metadata":{"labels":{"x":"1"}}}"#, "/metadata/labels", json!({"x": "1"})),
        (
            "application/json-patch+json",
            r#"[{"op":"add","path":"/metadata/labels/y","value":"2"}]"#,
            "/metadata/labels",
            json!({"x": "1", "y": "2"}),
        ),
        (
            "application/strategic-merge-patch+json",
            r#"{"spec":{"containers":[{"name":"a","$patch":"delete"}]}}"#,
            "/spec/containers",
            json!([{"name": "b", "image": "nginx:2"}]),
        ),
    ];
    for (ct, body, pointer, want) in cases {
        let r = patch(a, path, ct, body);
        assert_eq!(r.status, 200, "{ct} {body}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json().pointer(pointer), Some(want), "{ct} {body}");
    }
    let errors: &[(&str, &str, u16)] = &[
        ("application/json-patch+json", r#"[{"op":"test","path":"/metadata/name","value":"q"}]"#, 422),
        ("application/json-patch+json", "not json", 400),
        ("text/plain", "{}", 415),
        ("application/merge-patch+json", r#"{"metadata":{"resourceVersion":"1"}}"#, 409),
        ("application/merge-patch+json", r#"{"metadata":{"name":"other"}}"#, 400),
    ];
    for (ct, body, code) in errors {
        assert_eq!(patch(a, path, ct, body).status, *code, "{ct} {body}");
    }
    assert_eq!(patch(a, "/api/v1/namespaces/default/pods/missing", "application/merge-patch+json", "{}").status, 404);
    // Managed fields record each patch's manager.
    let managers: Vec<String> = get(a, path).json()["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().map(|e| e["manager"].as_str().unwrap_or_default().to_string()).collect())
        .unwrap_or_default();
    assert_eq!(managers, ["testclient"]);
}

#[test]
fn server_side_apply_conflicts_force_and_dry_run() {
    let s = server();
    let a = s.addr();
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    let config = |replicas: i64| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}).to_string()
    };
    let apply = |manager: &str, body: &str, extra: &str| {
        patch(a, &format!("{path}?fieldManager={manager}{extra}"), "application/apply-patch+yaml", body)
    };

    let created = apply("alice", &config(1), "");
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    assert_eq!(created.json()["metadata"]["managedFields"][0]["operation"], "Apply");
    let conflict = apply("bob", &config(2), "");
    assert_eq!(conflict.status, 409);
    let status = conflict.json();
    assert_eq!(
        status["message"],
        "Apply failed with 1 conflict: conflict with \"alice\" using apps/v1: .spec.replicas"
    );
    assert_eq!(status["details"]["causes"][0]["type"], "FieldManagerConflict");

    let dry = apply("bob", &config(2), "&force=true&dryRun=All");
    assert_eq!(dry.json()["spec"]["replicas"], 2);
    assert_eq!(get(a, path).json()["spec"]["replicas"], 1, "a dry run stores nothing");

    let forced = apply("bob", &config(2), "&force=true").json();
    assert_eq!(forced["spec"]["replicas"], 2);
    let owners: BTreeMap<String, Value> = forced["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e["manager"].as_str().unwrap_or_default().to_string(), e["fieldsV1"].clone()))
        .collect();
    assert_eq!(owners["bob"]["f:spec"]["f:replicas"], json!({}));
    assert_eq!(owners["alice"]["f:spec"].get("f:replicas"), None);

    // YAML bodies; a missing field manager; a kind mismatch.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  mode: 0644\n  on: yes\n";
    let cm =
        patch(a, "/api/v1/namespaces/default/configmaps/y?fieldManager=m", "application/apply-patch+yaml", yaml).json();
    assert_eq!(cm["data"], json!({"mode": 420, "true": true}));
    assert_eq!(patch(a, "/api/v1/namespaces/default/configmaps/y", "application/apply-patch+yaml", yaml).status, 400);
    assert_eq!(
        patch(a, "/api/v1/namespaces/default/secrets/y?fieldManager=m", "application/apply-patch+yaml", yaml).status,
        400
    );
}

#[test]
fn custom_resource_definitions_come_and_go() {
    let s = server();
    let a = s.addr();
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.io"},
        "spec": {"group": "example.io", "scope": "Namespaced", "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}});
    assert_eq!(get(a, "/apis/example.io/v1/widgets").status, 404);
    let created = post(a, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &crd).json();
    let established = created["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|x| x["type"] == "Established" && x["status"] == "True"));
    assert!(established, "{created}");
    let discovery = get(a, "/apis/example.io/v1").json();
    assert_eq!(discovery["resources"][0]["name"], "widgets");
    assert!(get(a, "/apis").json()["groups"].as_array().is_some_and(|g| g.iter().any(|x| x["name"] == "example.io")));
    let w = json!({"apiVersion": "example.io/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}});
    assert_eq!(post(a, "/apis/example.io/v1/namespaces/default/widgets", &w).status, 201);
    let list = get(a, "/apis/example.io/v1/widgets").json();
    assert_eq!(list["kind"], "WidgetList");
    assert_eq!(list["items"][0]["kind"], "Widget", "custom resources keep kind in lists");
    assert_eq!(
        patch(a, "/apis/example.io/v1/namespaces/default/widgets/w", "application/strategic-merge-patch+json", "{}")
            .status,
        415
    );

    let bad = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "wrong.example.io"}, "spec": crd["spec"]});
    assert_eq!(post(a, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", &bad).status, 422);

    assert_eq!(delete(a, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.io").status, 200);
    assert_eq!(get(a, "/apis/example.io/v1/widgets").status, 404);
    assert_eq!(get(a, "/apis/example.io/v1").status, 404);
    assert!(s
        .store()
        .store()
        .snapshot(&kubesnap_testserver::GroupResource::new("example.io", "widgets"), None, None, None)
        .is_ok_and(|snap| snap.items.is_empty()));
}

#[test]
fn finalizers_namespaces_and_dry_runs() {
    let s = server();
    let a = s.addr();
    let mut cm = configmap("default", "held");
    cm["metadata"]["finalizers"] = json!(["example.io/hold"]);
    post(a, CMS, &cm);
    let marked = delete(a, &format!("{CMS}/held")).json();
    assert!(marked["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(get(a, &format!("{CMS}/held")).status, 200);
    patch(
        a,
        &format!("{CMS}/held"),
        "application/json-patch+json",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    );
    assert_eq!(get(a, &format!("{CMS}/held")).status, 404);

    // Dry runs change nothing.
    assert_eq!(
        request(
            a,
            "POST",
            &format!("{CMS}?dryRun=All"),
            "application/json",
            configmap("default", "dry").to_string().as_bytes()
        )
        .status,
        201
    );
    assert_eq!(get(a, &format!("{CMS}/dry")).status, 404);
    post(a, CMS, &configmap("default", "keep"));
    assert_eq!(request(a, "DELETE", &format!("{CMS}/keep?dryRun=All"), "", b"").status, 200);
    assert_eq!(
        request(a, "DELETE", &format!("{CMS}/keep"), "application/json", br#"{"preconditions":{"uid":"nope"}}"#).status,
        409
    );
    assert_eq!(get(a, &format!("{CMS}/keep")).status, 200);

    // A namespace takes its objects along.
    post(a, "/api/v1/namespaces", &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}}));
    post(a, "/api/v1/namespaces/tmp/configmaps", &configmap("tmp", "x"));
    assert_eq!(delete(a, "/api/v1/namespaces/tmp").status, 200);
    assert!(names(&get(a, "/api/v1/configmaps").json()).iter().all(|n| n != "x"));

    // Delete a collection by label.
    for (n, team) in [("c1", "a"), ("c2", "a"), ("c3", "b")] {
        let mut c = configmap("default", n);
        c["metadata"]["labels"] = json!({"team": team});
        post(a, CMS, &c);
    }
    let deleted = request(a, "DELETE", &format!("{CMS}?labelSelector=team%3Da"), "", b"").json();
    assert_eq!(names(&deleted), ["c1", "c2"]);
    assert_eq!(names(&get(a, &format!("{CMS}?labelSelector=team")).json()), ["c3"]);
}

#[test]
fn discovery_in_both_formats() {
    let s = server();
    let a = s.addr();
    let v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let agg = common::try_request(a, "GET", "/apis", "", b"", &[("Accept", v2)]).unwrap_or_else(|| panic!("no reply"));
    assert_eq!(
        agg.header("content-type"),
        Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    );
    let agg = agg.json();
    assert_eq!(agg["kind"], "APIGroupDiscoveryList");
    let apps = agg["items"]
        .as_array()
        .and_then(|i| i.iter().find(|g| g["metadata"]["name"] == "apps"))
        .cloned()
        .unwrap_or_default();
    let deploy = apps["versions"][0]["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|x| x["resource"] == "deployments"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (deploy["scope"].as_str(), deploy["shortNames"][0].as_str(), deploy["categories"][0].as_str()),
        (Some("Namespaced"), Some("deploy"), Some("all"))
    );
    let core = common::try_request(a, "GET", "/api", "", b"", &[("Accept", v2)]).map(|r| r.json()).unwrap_or_default();
    assert_eq!(core["items"][0]["versions"][0]["version"], "v1");

    let legacy = get(a, "/apis").json();
    assert_eq!(legacy["kind"], "APIGroupList");
    let hpa = legacy["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|x| x["name"] == "autoscaling"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(hpa["preferredVersion"]["version"], "v2");
    let v1 = get(a, "/api/v1").json();
    let pods_status = v1["resources"].as_array().is_some_and(|r| r.iter().any(|x| x["name"] == "pods/status"));
    assert!(pods_status);
    assert_eq!(get(a, "/api").json()["versions"][0], "v1");
    assert_eq!(get(a, "/version").json()["minor"], "33");

    let off = TestServer::start(Options { aggregated_discovery: false, ..Options::default() })
        .unwrap_or_else(|e| panic!("{e}"));
    let legacy_only = common::try_request(off.addr(), "GET", "/apis", "", b"", &[("Accept", v2)])
        .map(|r| r.json())
        .unwrap_or_default();
    assert_eq!(legacy_only["kind"], "APIGroupList");
}

#[test]
fn bad_requests_get_status_errors_not_panics() {
    let s = server();
    let a = s.addr();
    let cases: &[(&str, &str, &str, &[u8], u16)] = &[
        ("GET", "/nothing", "", b"", 404),
        ("GET", "/apis/nothing/v1/things", "", b"", 404),
        ("GET", "/api/v1/namespaces/default/nodes/x", "", b"", 404),
        ("GET", "/api/v1/pods/x", "", b"", 404),
        ("POST", "/api/v1/namespaces/default/configmaps", "application/json", b"{not json", 400),
        ("POST", "/api/v1/namespaces/default/configmaps", "application/json", b"[1,2]", 400),
        ("POST", "/api/v1/namespaces/default/configmaps", "application/vnd.kubernetes.protobuf", b"k8s\x00\x01", 415),
        ("POST", "/api/v1/namespaces/default/configmaps", "application/json", b"\xff\xfe", 400),
        ("POST", "/api/v1/namespaces/default/configmaps/x", "application/json", b"{}", 405),
        ("PUT", "/api/v1/namespaces/default/configmaps", "application/json", b"{}", 405),
        ("DELETE", "/api/v1/namespaces", "", b"", 405),
        ("POST", "/apis", "", b"", 405),
        ("GET", "/api/v1/namespaces/default/configmaps?limit=abc", "", b"", 400),
        ("GET", "/api/v1/namespaces/default/configmaps?resourceVersion=abc", "", b"", 400),
        ("PATCH", "/api/v1/namespaces/default/configmaps/x", "application/apply-patch+yaml", b"a: [", 400),
        ("GET", "/api/v1/componentstatuses", "", b"", 200),
        (
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            "application/json",
            br#"{"apiVersion":"authorization.k8s.io/v1","kind":"SelfSubjectAccessReview","spec":{}}"#,
            201,
        ),
    ];
    for (method, path, ct, body, code) in cases {
        let r = request(a, method, path, ct, body);
        assert_eq!(r.status, *code, "{method} {path}: {}", String::from_utf8_lossy(&r.body));
        if *code >= 400 {
            assert_eq!(r.json()["kind"], "Status", "{method} {path}");
        }
    }
    // Patches that would break the object's shape.
    post(a, CMS, &configmap("default", "victim"));
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"}, "spec": "not an object"});
    post(a, "/apis/apps/v1/namespaces/default/deployments", &deploy);
    let victim = format!("{CMS}/victim");
    let patches: &[(&str, &str, &str, u16)] = &[
        (victim.as_str(), "application/json-patch+json", r#"[{"op":"replace","path":"","value":[1]}]"#, 422),
        (victim.as_str(), "application/json-patch+json", r#"[{"op":"replace","path":"/metadata","value":5}]"#, 400),
        (victim.as_str(), "application/merge-patch+json", "[1]", 422),
        (victim.as_str(), "application/merge-patch+json", r#"{"metadata": 5}"#, 400),
        (victim.as_str(), "application/strategic-merge-patch+json", r#"{"$patch": "delete"}"#, 400),
        (victim.as_str(), "application/strategic-merge-patch+json", r#"{"data": {"$patch": "bogus"}}"#, 422),
        (victim.as_str(), "application/apply-patch+yaml", "[1, 2]", 400),
        (
            "/apis/apps/v1/namespaces/default/deployments/d/scale",
            "application/merge-patch+json",
            r#"{"spec": {"replicas": 2}}"#,
            422,
        ),
        (
            "/apis/apps/v1/namespaces/default/deployments/d/scale",
            "application/merge-patch+json",
            r#"{"spec": {"replicas": "x"}}"#,
            422,
        ),
        ("/api/v1/namespaces/default/configmaps/victim/scale", "application/merge-patch+json", "{}", 404),
    ];
    for (path, ct, body, code) in patches {
        let r = patch(a, path, ct, body);
        assert_eq!(r.status, *code, "{ct} {body}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["kind"], "Status");
    }
    assert_eq!(get(a, &victim).json()["data"]["k"], "victim", "failed patches change nothing");

    let review = post(
        a,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        &json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}}),
    )
    .json();
    assert_eq!(review["status"]["allowed"], true);
}

#[test]
fn the_library_reaches_the_store_directly() {
    let s = server();
    let a = s.addr();
    let mut w = Watch::open(a, &format!("{CMS}?watch=1&resourceVersion={}", s.store().resource_version()));
    let put = s.store().put_object(configmap("default", "direct")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(put["metadata"]["name"], "direct");
    assert_eq!(w.until("ADDED")["object"]["metadata"]["name"], "direct");
    assert_eq!(
        s.store().get_object("", "configmaps", Some("default"), "direct").map(|o| o["data"]["k"].clone()),
        Some(json!("direct"))
    );
    assert_eq!(s.store().list_objects("", "namespaces").len(), 3);
    // Status of a type with a status subresource is set too.
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"}, "spec": {"replicas": 1}, "status": {"readyReplicas": 1}});
    let d = s.store().put_object(deploy).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d["status"]["readyReplicas"], 1);
    s.store().delete_object("", "configmaps", Some("default"), "direct").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.until("DELETED")["object"]["metadata"]["name"], "direct");
    let log = s.requests();
    assert!(log.iter().all(|r| r.method == "GET"), "the store bypasses HTTP");
}

#[tokio::test(flavor = "current_thread")]
async fn async_start_and_stop() {
    let s = TestServer::start_async(Options::default()).await.unwrap_or_else(|e| panic!("{e}"));
    let addr = s.addr();
    let r = tokio::task::spawn_blocking(move || get(addr, "/version").status).await.unwrap_or(0);
    assert_eq!(r, 200);
    let kubeconfig = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    s.write_kubeconfig(kubeconfig.path()).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(kubeconfig.path()).unwrap_or_default();
    assert!(text.contains(&format!("server: {}", s.url())), "{text}");
    s.stop();
    assert!(std::net::TcpStream::connect(addr).is_err(), "stopped servers do not listen");
}

/// Random combinations of methods, paths, query strings, content types and bodies: every one
/// gets a reply (a handler panic would close the connection instead), and errors are `Status`.
#[test]
fn random_requests_never_break_the_server() {
    let s = server();
    let a = s.addr();
    post(a, CMS, &configmap("default", "x"));
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    let paths = [
        "/",
        "/api",
        "/apis",
        "/api/v1",
        "/apis/apps/v1",
        "/api/v1/namespaces",
        "/api/v1/namespaces/default",
        "/api/v1/namespaces/default/status",
        "/api/v1/namespaces/default/configmaps",
        "/api/v1/namespaces/default/configmaps/x",
        "/api/v1/namespaces/default/configmaps/x/status",
        "/api/v1/watch/namespaces/default/configmaps/x",
        "/apis/apps/v1/deployments",
        "/apis/apps/v1/namespaces/default/deployments/x/scale",
        "/api/v1/namespaces/%ZZ/configmaps",
        "/api/v1/namespaces//configmaps",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        "/openapi/v3/apis/apps/v1",
        "/testserver/faults",
        "/api/v1/nodes/n/proxy",
    ];
    let queries = [
        "",
        "?watch=1&timeoutSeconds=1",
        "?limit=-1",
        "?limit=2&continue=%%%",
        "?labelSelector=((",
        "?fieldSelector=a",
        "?dryRun=All",
        "?fieldManager=m&force=true",
        "?resourceVersion=99999999999999999999",
        "?resourceVersionMatch=Exact&resourceVersion=1",
    ];
    let types = [
        "application/json",
        "application/merge-patch+json",
        "application/json-patch+json",
        "application/strategic-merge-patch+json",
        "application/apply-patch+yaml",
        "application/yaml",
        "text/plain",
        "",
    ];
    let bodies: [&[u8]; 10] = [
        b"",
        b"{}",
        b"[]",
        b"null",
        b"\"s\"",
        b"{\"metadata\":{\"name\":\"x\"}}",
        b"{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":[]}",
        b"[{\"op\":\"move\",\"from\":\"/metadata\",\"path\":\"/metadata/x\"}]",
        b"\xff\x00\xfe",
        b"a: &x [*x, *x]\nb: *x\n",
    ];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        usize::try_from(state % n as u64).unwrap_or(0)
    };
    for _ in 0..400 {
        let (m, p, q, t, b) = (
            methods[next(methods.len())],
            paths[next(paths.len())],
            queries[next(queries.len())],
            types[next(types.len())],
            bodies[next(bodies.len())],
        );
        let path = format!("{p}{q}");
        let r = common::try_request(a, m, &path, t, b, &[])
            .unwrap_or_else(|| panic!("{m} {path} ({t}, {:?}): no reply", String::from_utf8_lossy(b)));
        if r.status >= 400 && m != "HEAD" && !p.starts_with("/testserver") {
            let status: Value = serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{m} {path}: {e}"));
            assert_eq!(status["kind"], "Status", "{m} {path}");
        }
    }
    assert_eq!(get(a, "/version").status, 200);
}

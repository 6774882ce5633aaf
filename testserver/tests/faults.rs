//! Every fault, through the library API and the control endpoint, and the request log.

mod common;

use std::time::{Duration, Instant};

use common::{configmap, get, post, try_request};
use kubesnap_testserver::{Fault, FaultAction, Options, TestServer};
use serde_json::json;

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn server_with_configmaps(n: usize) -> TestServer {
    let s = TestServer::start(Options::default()).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..n {
        post(s.addr(), CMS, &configmap("default", &format!("cm-{i}")));
    }
    s
}

#[test]
fn status_faults_reply_as_kubernetes() {
    let s = server_with_configmaps(1);
    let a = s.addr();
    let cases: &[(FaultAction, u16, &str)] = &[
        (FaultAction::Forbidden, 403, "Forbidden"),
        (FaultAction::Gone, 410, "Expired"),
        (FaultAction::TooManyRequests { retry_after_seconds: 3 }, 429, "TooManyRequests"),
        (FaultAction::InternalError, 500, "InternalError"),
        (FaultAction::Status { code: 503 }, 503, "ServiceUnavailable"),
    ];
    for (action, code, reason) in cases {
        let id = s.faults().add(Fault::new(action.clone()).on("", "configmaps").times(1));
        let r = get(a, CMS);
        assert_eq!((r.status, r.json()["reason"].as_str()), (*code, Some(*reason)), "{action:?}");
        assert_eq!(r.json()["kind"], "Status");
        if *code == 429 {
            assert_eq!(r.header("retry-after"), Some("3"));
        }
        assert_eq!(s.faults().fired(id), 1);
        assert_eq!(get(a, CMS).status, 200, "{action:?} fires once");
    }
    let forbidden = {
        s.faults().add(Fault::new(FaultAction::Forbidden).on("", "configmaps").verb("get").times(1));
        get(a, &format!("{CMS}/cm-0")).json()
    };
    assert_eq!(forbidden["message"], "configmaps \"cm-0\" is forbidden: User \"system:anonymous\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\"");
    // Other resources and discovery are untouched.
    s.faults().add(Fault::new(FaultAction::InternalError).on("", "configmaps"));
    assert_eq!(get(a, "/api/v1/namespaces").status, 200);
    assert_eq!(get(a, "/api/v1").status, 200);
    assert_eq!(get(a, CMS).status, 500);
    s.faults().clear();
    assert_eq!(get(a, CMS).status, 200);
}

#[test]
fn gone_on_the_nth_continue() {
    let s = server_with_configmaps(10);
    let a = s.addr();
    s.faults().add(Fault::gone_on_continue(2).on("", "configmaps"));
    let first = get(a, &format!("{CMS}?limit=3")).json();
    let t1 = first["metadata"]["continue"].as_str().unwrap_or_default().to_string();
    let second = get(a, &format!("{CMS}?limit=3&continue={t1}"));
    assert_eq!(second.status, 200, "the first continue passes");
    let t2 = second.json()["metadata"]["continue"].as_str().unwrap_or_default().to_string();
    let third = get(a, &format!("{CMS}?limit=3&continue={t2}"));
    assert_eq!((third.status, third.json()["reason"].as_str()), (410, Some("Expired")));
    assert_eq!(get(a, &format!("{CMS}?limit=3&continue={t2}")).status, 200, "only once");
}

#[test]
fn slow_replies() {
    let s = server_with_configmaps(1);
    s.faults().add(Fault::new(FaultAction::Delay { millis: 1500 }).on("", "configmaps").times(1));
    let start = Instant::now();
    assert_eq!(get(s.addr(), CMS).status, 200);
    assert!(start.elapsed() >= Duration::from_millis(1500));
    let start = Instant::now();
    get(s.addr(), CMS);
    assert!(start.elapsed() < Duration::from_millis(1500), "the fault fired once");
}

#[test]
fn truncated_malformed_and_dropped_replies() {
    let s = server_with_configmaps(20);
    let a = s.addr();
    s.faults().add(Fault::new(FaultAction::TruncatedBody).on("", "configmaps").times(1));
    let cut = try_request(a, "GET", CMS, "", b"", &[]).unwrap_or_else(|| panic!("headers expected"));
    assert_eq!(cut.status, 200);
    assert!(cut.short, "the body is shorter than its Content-Length");
    assert!(serde_json::from_slice::<serde_json::Value>(&cut.body).is_err());

    s.faults().add(Fault::new(FaultAction::MalformedBody).on("", "configmaps").times(1));
    let bad = try_request(a, "GET", CMS, "", b"", &[]).unwrap_or_else(|| panic!("a reply expected"));
    assert_eq!(bad.status, 200);
    assert!(!bad.short);
    assert!(serde_json::from_slice::<serde_json::Value>(&bad.body).is_err());

    s.faults().add(Fault::new(FaultAction::DropConnection).on("", "configmaps").verb("list").times(1));
    assert!(try_request(a, "GET", CMS, "", b"", &[]).is_none(), "no reply at all");
    assert_eq!(get(a, CMS).status, 200);

    // A watch can be cut too.
    s.faults().add(Fault::new(FaultAction::TruncatedBody).on("", "configmaps").verb("watch").times(1));
    let mut w = common::Watch::open(a, &format!("{CMS}?watch=1"));
    assert_eq!(w.status, 200);
    assert!(w.next().is_none(), "the stream ends inside the first event");

    // The log has every request with its final status (0: dropped).
    let statuses: Vec<u16> = s
        .requests()
        .iter()
        .filter(|r| r.resource.as_deref() == Some("configmaps") && r.method == "GET")
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [200, 200, 0, 200, 200]);
    let dropped =
        s.requests().into_iter().find(|r| r.status == 0).unwrap_or_else(|| panic!("no dropped request logged"));
    assert_eq!((dropped.verb.as_deref(), dropped.path.as_str(), dropped.query.as_str()), (Some("list"), CMS, ""));
    assert!(dropped.fault.is_some_and(|f| f.contains("DropConnection")));
}

#[test]
fn faults_by_verb_skip_and_control_endpoint() {
    let s = server_with_configmaps(1);
    let a = s.addr();
    s.faults().add(Fault::new(FaultAction::InternalError).on("", "configmaps").verb("create").skip(1).times(1));
    let codes: Vec<u16> = (0..3).map(|i| post(a, CMS, &configmap("default", &format!("n{i}"))).status).collect();
    assert_eq!(codes, [201, 500, 201]);

    // Through the control endpoint, as the binary's users would.
    let fault = json!({"group": "", "resource": "configmaps", "verbs": ["get"], "action": {"type": "tooManyRequests", "retryAfterSeconds": 2}});
    let added = post(a, "/testserver/faults", &fault);
    assert_eq!(added.status, 201);
    let id = added.json()["id"].as_u64().unwrap_or_default();
    assert_eq!(get(a, &format!("{CMS}/cm-0")).status, 429);
    let listed = get(a, "/testserver/faults").json();
    assert!(listed.as_array().is_some_and(|l| l.iter().any(|f| f["id"] == id && f["fired"] == 1)));
    assert_eq!(common::request(a, "DELETE", &format!("/testserver/faults/{id}"), "", b"").status, 200);
    assert_eq!(get(a, &format!("{CMS}/cm-0")).status, 200);
    assert_eq!(post(a, "/testserver/faults", &json!({"action": {"type": "nonsense"}})).status, 400);
    let log = get(a, "/testserver/requests").json();
    assert!(log.as_array().is_some_and(|l| l.iter().any(|r| r["status"] == 429 && r["verb"] == "get")));
    assert_eq!(common::request(a, "DELETE", "/testserver/requests", "", b"").status, 200);
    assert_eq!(s.requests().len(), 1, "only the DELETE itself... logged after clearing");
    // Faults given at start.
    let preset = TestServer::start(Options {
        faults: vec![Fault::parse("core/namespaces:list=403").unwrap_or_else(|e| panic!("{e}"))],
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(get(preset.addr(), "/api/v1/namespaces").status, 403);
}

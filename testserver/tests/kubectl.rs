//! Fidelity: the real `kubectl` against the `kubesnap-testserver` binary.
//!
//! Needs `kubectl` on the PATH (the installed dispatcher picks its bundled 1.33 kubectl from
//! the server's `/version`), and for the fixture test `../shared` (gen-history and its corpus)
//! beside the repository, or `KUBESNAP_SHARED_DIR`. A test whose tool is missing says so on
//! stderr and passes, so that a machine without them can still run the other tests.
//!
//! The `#[ignore]`d `real_cluster_*` tests run the same scenarios against a real, disposable
//! cluster (kind or k3d) named by `KUBESNAP_REAL_KUBECONFIG`, to check that the scenarios'
//! expectations hold on Kubernetes itself (see the README).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubesnap_testserver::yaml;
use serde_json::Value;

fn kubectl_available() -> bool {
    let ok = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("kubectl is not installed: skipping");
    }
    ok
}

/// A cluster to run kubectl against: a running binary (or a real cluster), its kubeconfig, and
/// a HOME of its own (kubectl caches discovery per host:port under HOME, and ports get reused).
struct Binary {
    child: Option<Child>,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    url: String,
}

impl Binary {
    /// A real cluster from `KUBESNAP_REAL_KUBECONFIG`, if set.
    fn real() -> Option<Binary> {
        let kubeconfig = PathBuf::from(std::env::var_os("KUBESNAP_REAL_KUBECONFIG")?);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        Some(Binary { child: None, dir, kubeconfig, url: String::new() })
    }

    fn is_testserver(&self) -> bool {
        self.child.is_some()
    }

    fn start(args: &[&str]) -> Binary {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kubeconfig = dir.path().join("kubeconfig");
        let child = Command::new(env!("CARGO_BIN_EXE_kubesnap-testserver"))
            .args(args)
            .arg("--write-kubeconfig")
            .arg(&kubeconfig)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the binary: {e}"));
        let start = Instant::now();
        while !kubeconfig.exists() {
            assert!(start.elapsed() < Duration::from_secs(60), "no kubeconfig after 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&kubeconfig).unwrap_or_default();
        let url = text.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap_or_default().to_string();
        Binary { child: Some(child), dir, kubeconfig, url }
    }

    fn command(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.env("KUBECONFIG", &self.kubeconfig).env("HOME", self.dir.path());
        c
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap_or_else(|e| panic!("kubectl: {e}"))
    }

    /// Runs kubectl; panics with its stderr when it fails.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl with stdin.
    fn ok_stdin(&self, args: &[&str], input: &str) -> String {
        use std::io::Write as _;
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("kubectl: {e}"));
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(input.as_bytes());
        }
        let out = child.wait_with_output().unwrap_or_else(|e| panic!("kubectl: {e}"));
        assert!(out.status.success(), "kubectl {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap_or_else(|e| panic!("kubectl {args:?}: not JSON: {e}"))
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.url.trim_start_matches("http://").parse().unwrap_or_else(|e| panic!("{}: {e}", self.url))
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("KUBESNAP_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    if dir.join("tools/gen-history").exists() {
        Some(dir)
    } else {
        eprintln!("{} has no tools/gen-history: skipping", dir.display());
        None
    }
}

/// One gen-history day (tenants 1) in a temporary folder.
fn gen_history_day() -> Option<(tempfile::TempDir, PathBuf)> {
    let shared = shared_dir()?;
    let out = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let status = Command::new("python3")
        .arg(shared.join("tools/gen-history"))
        .arg("--corpus")
        .arg(shared.join("corpus/manifests"))
        .arg("--out")
        .arg(out.path())
        .args(["--days", "1", "--tenants", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("gen-history failed (python3 with PyYAML needed): skipping");
        return None;
    }
    let day = out.path().join("day-00");
    Some((out, day))
}

fn identity(o: &Value) -> (String, String, String) {
    let av = o["apiVersion"].as_str().unwrap_or_default();
    let group = av.split_once('/').map_or("", |(g, _)| g);
    (
        format!("{}.{group}", o["kind"].as_str().unwrap_or_default()),
        o["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
        o["metadata"]["name"].as_str().unwrap_or_default().to_string(),
    )
}

/// The object as kubectl prints it: without managedFields, apiVersion compared apart.
fn comparable(o: &Value) -> Value {
    let mut o = o.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    if let Some(m) = o.as_object_mut() {
        m.remove("apiVersion");
    }
    o
}

#[test]
fn a_gen_history_day_comes_back_whole() {
    if !kubectl_available() {
        return;
    }
    let Some((_keep, day)) = gen_history_day() else { return };
    let day_arg = day.to_string_lossy().into_owned();
    let b = Binary::start(&["--fixtures", &day_arg]);

    // What the fixtures hold, read as Kubernetes reads YAML.
    let mut files = Vec::new();
    let mut stack = vec![day.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                files.push(p);
            }
        }
    }
    let mut want: BTreeMap<(String, String, String), Value> = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for doc in yaml::parse_documents(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display())) {
            want.insert(identity(&doc), doc);
        }
    }
    assert!(want.len() > 1000, "{} fixture objects", want.len());

    // api-resources lists the built-in types and those the fixtures imply, with short names.
    let resources = b.ok(&["api-resources"]);
    for needle in
        ["deployments ", "deploy ", "customresourcedefinitions", "opentelemetrycollectors", "podsecuritypolicies"]
    {
        assert!(resources.contains(needle), "api-resources lacks {needle:?}");
    }
    let listable: Vec<String> =
        b.ok(&["api-resources", "--verbs=list", "-o", "name"]).lines().map(str::to_string).collect();
    assert!(listable.len() > 300, "{} listable types", listable.len());

    // get all -A.
    let all = b.ok(&["get", "all", "-A"]);
    assert!(all.contains("deployment.apps/argocd-server"), "{all}");

    // get <every type> -A -o yaml: every object comes back, identical but for the apiVersion
    // of objects stored in a version other than the preferred one (as on a real cluster).
    let yaml_text = b.ok(&["get", &listable.join(","), "-A", "-o", "yaml"]);
    let docs = yaml::parse_documents(&yaml_text).unwrap_or_else(|e| panic!("kubectl's YAML: {e}"));
    let items = docs.first().and_then(|d| d["items"].as_array()).cloned().unwrap_or_default();
    let got: BTreeMap<(String, String, String), Value> = items.iter().map(|o| (identity(o), o.clone())).collect();
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    assert!(missing.is_empty(), "missing: {missing:?}");
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert_eq!(
        extra,
        [&("Namespace.".to_string(), String::new(), "kube-public".to_string())],
        "only what a new cluster adds"
    );
    let mut differ = Vec::new();
    for (k, w) in &want {
        if comparable(w) != comparable(&got[k]) {
            differ.push(k.clone());
        }
    }
    assert!(differ.is_empty(), "{} objects differ, first {:?}", differ.len(), differ.first());
}

const DEPLOY: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
";

#[test]
fn apply_edit_patch_and_delete() {
    if kubectl_available() {
        apply_edit_patch_and_delete_on(&Binary::start(&[]));
    }
}

#[test]
#[ignore = "needs a disposable real cluster in KUBESNAP_REAL_KUBECONFIG (kind or k3d)"]
fn real_cluster_apply_edit_patch_and_delete() {
    let b = Binary::real().unwrap_or_else(|| panic!("set KUBESNAP_REAL_KUBECONFIG"));
    apply_edit_patch_and_delete_on(&b);
}

#[test]
#[ignore = "needs a disposable real cluster in KUBESNAP_REAL_KUBECONFIG (kind or k3d)"]
fn real_cluster_crd_then_object_then_watch() {
    let b = Binary::real().unwrap_or_else(|| panic!("set KUBESNAP_REAL_KUBECONFIG"));
    crd_then_object_then_watch_on(&b);
}

fn apply_edit_patch_and_delete_on(b: &Binary) {
    assert!(b.ok_stdin(&["apply", "--server-side", "-f", "-"], DEPLOY).contains("serverside-applied"));
    // Re-applying the same configuration changes nothing.
    let rv = b.ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.resourceVersion}"]);
    b.ok_stdin(&["apply", "--server-side", "-f", "-"], DEPLOY);
    assert_eq!(b.ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.resourceVersion}"]), rv);

    // A dry run answers with the change and stores nothing; --validate=false works too.
    let seven = DEPLOY.replace("replicas: 2", "replicas: 7");
    let dry = b.ok_stdin(
        &["apply", "--server-side", "--dry-run=server", "-f", "-", "-o", "jsonpath={.spec.replicas}"],
        &seven,
    );
    assert_eq!(dry, "7");
    b.ok_stdin(&["apply", "--server-side", "--validate=false", "--dry-run=server", "-f", "-"], &seven);
    assert_eq!(b.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]), "2");

    // edit: kubectl sends a strategic merge patch with $setElementOrder.
    let edited = b
        .command()
        .env("EDITOR", "sed -i s/nginx:1.25/nginx:1.26/")
        .args(["edit", "deploy", "web"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(edited.status.success(), "{}", String::from_utf8_lossy(&edited.stderr));
    let d = b.json(&["get", "deploy", "web", "-o", "json", "--show-managed-fields"]);
    assert_eq!(d["spec"]["template"]["spec"]["containers"][0]["image"], "nginx:1.26");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"], 80,
        "other fields of the container stay"
    );
    assert_eq!(d["metadata"]["generation"], 2);
    // (A real cluster adds kube-controller-manager's status entry.)
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .map(|m| m.iter().filter_map(|e| e["manager"].as_str()).filter(|m| m.starts_with("kubectl")).collect())
        .unwrap_or_default();
    assert_eq!(managers, ["kubectl", "kubectl-edit"]);

    // The edit took the image: applying the old one now conflicts, and --force-conflicts wins.
    let conflict = b
        .command()
        .args(["apply", "--server-side", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            if let Some(mut i) = c.stdin.take() {
                let _ = i.write_all(DEPLOY.as_bytes());
            }
            c.wait_with_output()
        })
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!conflict.status.success());
    let err = String::from_utf8_lossy(&conflict.stderr);
    assert!(
        err.contains("conflict with \"kubectl-edit\"")
            && err.contains(".spec.template.spec.containers[name=\"web\"].image"),
        "{err}"
    );
    b.ok_stdin(&["apply", "--server-side", "--force-conflicts", "-f", "-"], DEPLOY);
    assert_eq!(
        b.ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]),
        "nginx:1.25"
    );

    // patch, in the three formats.
    b.ok(&[
        "patch",
        "deploy",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:2"}]}}}}"#,
    ]);
    b.ok(&["patch", "deploy", "web", "--type=merge", "-p", r#"{"metadata":{"annotations":{"a":"b"}}}"#]);
    b.ok(&["patch", "deploy", "web", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/replicas","value":4}]"#]);
    let d = b.json(&["get", "deploy", "web", "-o", "json"]);
    assert_eq!(
        (
            d["spec"]["template"]["spec"]["containers"][0]["image"].as_str(),
            d["metadata"]["annotations"]["a"].as_str(),
            d["spec"]["replicas"].as_i64()
        ),
        (Some("nginx:2"), Some("b"), Some(4))
    );
    b.ok(&["label", "deploy", "web", "tier=front"]);
    b.ok(&["annotate", "deploy", "web", "note=x"]);

    // create, replace and client-side apply of a ConfigMap.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\ndata:\n  mode: \"0644\"\n  flag: \"yes\"\n";
    b.ok_stdin(&["create", "-f", "-"], cm);
    b.ok_stdin(&["replace", "-f", "-"], &cm.replace("0644", "0600"));
    b.ok_stdin(&["apply", "-f", "-"], &cm.replace("0644", "0700"));
    let data = b.json(&["get", "cm", "demo", "-o", "json"]);
    assert_eq!(data["data"], serde_json::json!({"mode": "0700", "flag": "yes"}));

    // delete waits for finalizers, watching with a field selector.
    let held = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  finalizers: [example.io/hold]\n";
    b.ok_stdin(&["create", "-f", "-"], held);
    let mut deleting = b
        .command()
        .args(["delete", "cm", "held", "--timeout=30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let start = Instant::now();
    while b.ok(&["get", "cm", "held", "-o", "jsonpath={.metadata.deletionTimestamp}"]).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "never marked for deletion");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(deleting.try_wait().ok().flatten().is_none(), "kubectl delete waits while the finalizer is there");
    b.ok(&["patch", "cm", "held", "--type=json", "-p", r#"[{"op":"remove","path":"/metadata/finalizers"}]"#]);
    let out = deleting.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if b.is_testserver() {
        let waited = common::get(b.addr(), "/testserver/requests").json();
        let selector_watch = waited.as_array().is_some_and(|l| {
            l.iter().any(|r| {
                r["verb"] == "watch"
                    && r["query"].as_str().is_some_and(|q| q.contains("fieldSelector=metadata.name%3Dheld"))
            })
        });
        assert!(selector_watch, "kubectl delete watched with a field selector");
    }

    b.ok(&["delete", "cm", "demo"]);
    b.ok(&["delete", "deploy", "web"]);
    let gone = b.kubectl(&["get", "deploy", "web"]);
    assert!(String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
}

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.io
spec:
  group: example.io
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
";

#[test]
fn crd_then_object_then_watch() {
    if kubectl_available() {
        crd_then_object_then_watch_on(&Binary::start(&[]));
    }
}

fn crd_then_object_then_watch_on(b: &Binary) {
    b.ok_stdin(&["create", "-f", "-"], CRD);
    b.ok(&["wait", "--for", "condition=established", "crd/widgets.example.io", "--timeout=10s"]);
    b.ok_stdin(
        &["create", "-f", "-"],
        "apiVersion: example.io/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: 3\n",
    );
    assert!(b.ok(&["get", "wd"]).contains("w1"));
    assert!(b.ok(&["get", "all"]).contains("w1"), "the all category includes the CRD");
    assert!(b.ok(&["api-resources", "--api-group=example.io"]).contains("widgets"));
    b.ok(&["patch", "widget", "w1", "--type=merge", "-p", r#"{"spec":{"size":4}}"#]);
    let smp = b.kubectl(&["patch", "widget", "w1", "-p", r#"{"spec":{"size":5}}"#]);
    assert!(
        String::from_utf8_lossy(&smp.stderr).contains("strategic-merge-patch+json is not supported"),
        "custom resources refuse strategic merge patches"
    );

    // get --watch sees a change.
    let mut watch = b
        .command()
        .args([
            "get",
            "widgets",
            "--watch",
            "--request-timeout=60s",
            "-o",
            "jsonpath={.metadata.name}={.spec.size}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut lines = BufReader::new(watch.stdout.take().unwrap_or_else(|| panic!("no stdout"))).lines();
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("w1=4"));
    b.ok(&["patch", "widget", "w1", "--type=merge", "-p", r#"{"spec":{"size":6}}"#]);
    assert_eq!(lines.next().and_then(Result::ok).as_deref(), Some("w1=6"));
    let _ = watch.kill();
    let _ = watch.wait();

    b.ok(&["delete", "crd", "widgets.example.io"]);
    if b.is_testserver() {
        assert_eq!(common::get(b.addr(), "/apis/example.io/v1/widgets").status, 404);
    }
}

#[test]
fn faults_from_the_command_line_reach_kubectl() {
    if !kubectl_available() {
        return;
    }
    let b = Binary::start(&["--fault", "apps/deployments:list=403", "--fault", "configmaps:list=429:1;times=1"]);
    let denied = b.kubectl(&["get", "deployments"]);
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr)
        .contains("User \"system:anonymous\" cannot list resource \"deployments\" in API group \"apps\""));
    // client-go retries a 429 after Retry-After.
    b.ok(&["get", "configmaps"]);
    let log = common::get(b.addr(), "/testserver/requests").json();
    let codes: Vec<i64> = log
        .as_array()
        .map(|l| l.iter().filter(|r| r["resource"] == "configmaps").filter_map(|r| r["status"].as_i64()).collect())
        .unwrap_or_default();
    assert_eq!(codes, [429, 200]);
}

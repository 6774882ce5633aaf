//! Shared helpers: a temporary repository driven through the real `kubesnap` binary, synthetic
//! dump folders, and access to the shared corpus and `gen-history`.

#![allow(dead_code)] // each test module uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kubesnap_testserver::{Options, TestServer};
use serde_json::Value;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Env {
    pub dir: tempfile::TempDir,
    pub repo: PathBuf,
    pub cache: PathBuf,
    /// More environment for every command (a store's credentials).
    pub extra_env: Vec<(String, String)>,
}

impl Env {
    /// A new, initialised repository with cheap KDF parameters.
    pub fn new() -> Env {
        let env = Env::uninit();
        env.ok(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]);
        env
    }

    pub fn uninit() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().join("repo");
        let cache = dir.path().join("cache");
        Env { dir, repo, cache, extra_env: Vec::new() }
    }

    /// A new, initialised repository at a store location (`s3://...`), with its environment.
    pub fn at(location: &str, extra_env: Vec<(String, String)>) -> Env {
        let mut env = Env::uninit();
        env.repo = PathBuf::from(location);
        env.extra_env = extra_env;
        env.ok(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]);
        env
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubesnap"));
        for (k, _) in std::env::vars() {
            if k.starts_with("KUBESNAP_") {
                c.env_remove(k);
            }
        }
        c.env("KUBESNAP_REPOSITORY", &self.repo)
            .env("KUBESNAP_PASSWORD", PASSWORD)
            .env("KUBESNAP_CACHE_DIR", &self.cache)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run kubesnap")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubesnap {args:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs a command that must fail; returns (exit code, stderr).
    pub fn fail(&self, args: &[&str]) -> (i32, String) {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "kubesnap {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "kubesnap {args:?} panicked:\n{err}");
        (out.status.code().unwrap_or(-1), err)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let text = self.ok(&a);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("kubesnap {args:?}: not JSON ({e}):\n{text}"))
    }

    /// Runs a command with `--json` that may fail; its exit code and JSON output.
    pub fn json_code(&self, args: &[&str]) -> (i32, Value) {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.run(&a);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "kubesnap {args:?} panicked:\n{stderr}");
        let v = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("kubesnap {args:?}: not JSON ({e}):\n{stderr}"));
        (out.status.code().unwrap_or(-1), v)
    }

    /// Snapshots a folder at a time; returns the snapshot id.
    pub fn snapshot(&self, dir: &Path, time: &str, extra: &[&str]) -> String {
        let d = dir.to_str().expect("utf-8 path");
        let mut args = vec!["snapshot", "--from-dir", d, "--time", time, "-q"];
        args.extend_from_slice(extra);
        let v = self.json(&args);
        v["id"].as_str().expect("id").to_owned()
    }
}

/// A test API server with the default namespaces (and `fixtures` loaded), and a kubeconfig
/// for it in the environment's folder, named after `name`.
pub fn test_server(env: &Env, fixtures: Option<&Path>, name: &str) -> (TestServer, PathBuf) {
    let server = TestServer::start(Options {
        fixtures: fixtures.map(Path::to_path_buf),
        default_namespaces: true,
        compaction_interval: None,
        ..Options::default()
    })
    .expect("start the test API server");
    let kc = env.path(&format!("{name}.kubeconfig"));
    server.write_kubeconfig(&kc).expect("kubeconfig");
    (server, kc)
}

/// Runs the real `kubectl` against a kubeconfig; must succeed; its stdout.
pub fn kubectl(kc: &Path, args: &[&str]) -> String {
    let out = Command::new("kubectl").arg("--kubeconfig").arg(kc).args(args).output().expect("run kubectl");
    assert!(out.status.success(), "kubectl {args:?}:\n{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Writes a file, creating folders.
pub fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// A small cluster dump made in code: namespaces, Deployments, ConfigMaps, Secrets (binary
/// data), a Service, a ClusterRole, a CRD and one of its objects, and tricky values.
pub fn synthetic_cluster(root: &Path, variant: u32) {
    write(
        root,
        "cluster/Namespace.core/shop.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n  uid: 1111\nstatus:\n  phase: Active\n",
    );
    write(root, "cluster/Namespace.core/blog.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: blog\n");
    write(
        root,
        "cluster/ClusterRole.rbac.authorization.k8s.io/system%3Aview.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: system:view\nrules:\n- apiGroups: ['']\n  resources: [pods]\n  verbs: [get, list]\n",
    );
    for ns in ["shop", "blog"] {
        let image = format!("nginx:1.{}", 20 + variant);
        write(
            root,
            &format!("namespaces/{ns}/Deployment.apps/web.yaml"),
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {ns}\n  resourceVersion: \"{rv}\"\n  uid: u-{ns}\n  generation: 2\n  labels:\n    app: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n      - name: web\n        image: {image}\n        ports:\n        - containerPort: 80\n      volumes:\n      - name: cfg\n        configMap:\n          name: web-config\n          defaultMode: 0644\nstatus:\n  readyReplicas: 2\n  observedGeneration: {rv}\n",
                rv = 100 + variant
            ),
        );
        write(
            root,
            &format!("namespaces/{ns}/ConfigMap.core/web-config.yaml"),
            &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  namespace: {ns}\ndata:\n  enabled: \"yes\"\n  mode: \"0644\"\n  greeting: héllo wörld ✓\n  multi: |\n    line one\n    line two\n"),
        );
        write(
            root,
            &format!("namespaces/{ns}/Secret.core/web-secret.yaml"),
            &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-secret\n  namespace: {ns}\ntype: Opaque\ndata:\n  password: {}\n  blob: AAEC/f7/\n", if variant == 0 { "c2VjcmV0MQ==" } else { "c2VjcmV0Mg==" }),
        );
        write(
            root,
            &format!("namespaces/{ns}/Service.core/web.yaml"),
            &format!("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  selector:\n    app: web\n  ports:\n  - port: 80\n    targetPort: 80\n"),
        );
    }
    let long = "a".repeat(253);
    let long_ref = kubesnap::format::resource::ResourceRef {
        group: String::new(),
        kind: "ConfigMap".into(),
        namespace: "shop".into(),
        name: long.clone(),
    };
    write(
        root,
        kubesnap::ops::restore::dump_path(&long_ref).to_str().unwrap(),
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {long}\n  namespace: shop\n  annotations:\n    note: \"日本語 ünïcödé\"\ndata:\n  on: off\n"),
    );
    write(
        root,
        "cluster/CustomResourceDefinition.apiextensions.k8s.io/widgets.example.com.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names:\n    kind: Widget\n    plural: widgets\n    singular: widget\n    shortNames: [wg]\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n",
    );
    write(root, "namespaces/shop/Widget.example.com/gizmo.yaml", &format!("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: gizmo\n  namespace: shop\nspec:\n  size: {}\n", 3 + variant));
}

/// The shared corpus, or None (with a note) when `KUBESNAP_CORPUS` is not set.
pub fn corpus(test: &str) -> Option<PathBuf> {
    match std::env::var_os("KUBESNAP_CORPUS") {
        Some(p) if Path::new(&p).is_dir() => Some(PathBuf::from(p)),
        _ => {
            eprintln!("{test}: skipped: KUBESNAP_CORPUS is not set to the shared corpus (see README)");
            None
        }
    }
}

fn gen_history_tool(corpus: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("KUBESNAP_GEN_HISTORY") {
        return PathBuf::from(p);
    }
    corpus.join("../../tools/gen-history")
}

/// Runs gen-history; returns the output folder and its truth.
pub fn gen_history(corpus: &Path, out: &Path, days: u32, tenants: u32, seed: u32) -> Value {
    let status = Command::new("python3")
        .arg(gen_history_tool(corpus))
        .args(["--corpus"])
        .arg(corpus)
        .arg("--out")
        .arg(out)
        .args(["--days", &days.to_string(), "--tenants", &tenants.to_string(), "--seed", &seed.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run gen-history");
    assert!(status.success(), "gen-history failed");
    serde_json::from_str(&std::fs::read_to_string(out.join("truth.json")).expect("truth.json")).expect("truth is JSON")
}

/// The independent YAML oracle (PyYAML with Kubernetes' rules): compares two folders.
pub fn oracle_compare(src: &Path, dst: &Path, desired_only: bool) -> (bool, String) {
    let mut c = Command::new("python3");
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/k8s_yaml.py")).arg("compare").arg(src).arg(dst);
    if desired_only {
        c.arg("--desired");
    }
    let out = c.output().expect("run the YAML oracle");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The oracle's reading of one YAML file: its documents as JSON.
pub fn oracle_read(path: &Path) -> Value {
    let out = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/k8s_yaml.py"))
        .arg("tojson")
        .arg(path)
        .output()
        .expect("run the YAML oracle");
    assert!(out.status.success(), "oracle failed on {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("oracle JSON")
}

/// "group/Kind/namespace/name" of a JSON resource ref, as gen-history's truth writes it.
pub fn ident(r: &Value) -> String {
    format!(
        "{}/{}/{}/{}",
        r["group"].as_str().unwrap_or_default(),
        r["kind"].as_str().unwrap_or_default(),
        r["namespace"].as_str().unwrap_or_default(),
        r["name"].as_str().unwrap_or_default()
    )
}

pub fn idents(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v.as_array().expect("array").iter().map(ident).collect();
    out.sort();
    out
}

pub fn strings(v: &Value) -> Vec<String> {
    let mut out: Vec<String> =
        v.as_array().expect("array").iter().map(|s| s.as_str().expect("string").to_owned()).collect();
    out.sort();
    out
}

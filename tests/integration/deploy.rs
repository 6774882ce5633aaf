//! The install manifests in `deploy/`: the CRDs are the ones the Rust types generate, and every
//! file is accepted by a server-side dry run (`kubectl apply --dry-run=server`) against the
//! test API server, the examples included.

use std::path::PathBuf;

use super::common::{kubectl, test_server, Env};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_crds_in_deploy_are_generated_from_the_types() {
    let env = Env::new();
    let generated = env.ok(&["operator", "crds"]);
    for f in ["deploy/crds.yaml", "deploy/helm/kubesnap/crds/kubesnap.yaml"] {
        let stored = std::fs::read_to_string(root().join(f)).unwrap();
        assert!(stored == generated, "{f} is stale: run `kubesnap operator crds > {f}`");
    }
}

/// A CRD of the Prometheus Operator's kinds, so that their manifests can be checked.
fn monitoring_crd(kind: &str, plural: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.monitoring.coreos.com\nspec:\n  group: monitoring.coreos.com\n  scope: Namespaced\n  names:\n    plural: {plural}\n    singular: {}\n    kind: {kind}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n",
        kind.to_lowercase()
    )
}

/// Paths of `orig` that `back` lacks or changed (defaults `back` adds are fine).
fn dropped(orig: &serde_json::Value, back: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match (orig, back) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in a {
                match b.get(k) {
                    Some(w) => dropped(v, w, &format!("{path}.{k}"), out),
                    None => out.push(format!("{path}.{k}")),
                }
            }
        }
        (a, b) if a == b => {}
        _ => out.push(path.to_string()),
    }
}

#[test]
fn every_deploy_manifest_passes_a_server_dry_run() {
    let env = Env::new();
    let (server, kc) = test_server(&env, None, "cluster");
    let deploy = root().join("deploy");
    let p = |rel: &str| deploy.join(rel).display().to_string();
    // What the dry runs need to exist for real: the CRDs and the namespaces.
    kubectl(&kc, &["apply", "-f", &p("crds.yaml")]);
    let extra = env.path("extra.yaml");
    std::fs::write(
        &extra,
        format!(
            "{}---\n{}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: kubesnap-system\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
            monitoring_crd("PrometheusRule", "prometheusrules"),
            monitoring_crd("ServiceMonitor", "servicemonitors")
        ),
    )
    .unwrap();
    kubectl(&kc, &["apply", "-f", extra.to_str().unwrap()]);
    for f in [
        "operator.yaml",
        "snapshot-rbac.yaml",
        "snapshot-rbac-namespaced.yaml",
        "prometheusrule.yaml",
        "servicemonitor.yaml",
    ] {
        let out = kubectl(&kc, &["apply", "--dry-run=server", "-f", &p(f)]);
        assert!(out.contains("(server dry run)"), "{f}: {out}");
    }
    for f in std::fs::read_dir(deploy.join("examples")).unwrap() {
        let f = f.unwrap().path();
        // A file without namespaces (the Repository) is applied to kubesnap-system.
        let text = std::fs::read_to_string(&f).unwrap();
        let mut args = vec!["apply", "--dry-run=server", "-f", f.to_str().unwrap()];
        if !text.contains("\n  namespace:") {
            args.extend(["-n", "kubesnap-system"]);
        }
        let out = kubectl(&kc, &args);
        assert!(out.contains("(server dry run)"), "{}: {out}", f.display());
        args.retain(|a| *a != "--dry-run=server");
        kubectl(&kc, &args);
    }
    // The examples use the contract's field names: each spec reads into the operator's types
    // and writes back the same (a misspelt field would be dropped on the way).
    for (resource, plural) in [("kubesnap.io", "snapshotschedules"), ("kubesnap.io", "repositories")] {
        let objects = server.store().list_objects(resource, plural);
        assert!(!objects.is_empty(), "no example {plural}");
        for o in objects {
            let spec = o["spec"].clone();
            let back = if plural == "repositories" {
                serde_json::to_value(
                    serde_json::from_value::<kubesnap::operator::crd::RepositorySpec>(spec.clone()).unwrap(),
                )
                .unwrap()
            } else {
                serde_json::to_value(
                    serde_json::from_value::<kubesnap::operator::crd::SnapshotScheduleSpec>(spec.clone()).unwrap(),
                )
                .unwrap()
            };
            let mut lost = Vec::new();
            dropped(&spec, &back, "spec", &mut lost);
            assert!(lost.is_empty(), "{plural} {}: the operator's types drop {lost:?}", o["metadata"]["name"]);
        }
    }
    server.stop();
}

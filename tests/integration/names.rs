//! Resource names through the CLI: CRDs in a snapshot, ambiguous kinds across groups.

use super::common::{write, Env};

fn crd(group: &str, kind: &str, plural: &str, short: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {plural}.{group}\nspec:\n  group: {group}\n  scope: Namespaced\n  names:\n    kind: {kind}\n    plural: {plural}\n    singular: {}\n    shortNames: [{short}]\n  versions:\n  - name: v1\n    served: true\n    storage: true\n",
        kind.to_lowercase()
    )
}

#[test]
fn crds_in_the_snapshot_resolve_and_ambiguity_is_an_error() {
    let env = Env::new();
    let d = env.path("d");
    write(&d, "crd1.yaml", &crd("cert-manager.io", "Certificate", "certificates", "cert"));
    write(&d, "crd2.yaml", &crd("networking.internal.knative.dev", "Certificate", "certificates", "kcert"));
    write(&d, "c1.yaml", "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata:\n  name: tls\n  namespace: web\nspec:\n  secretName: tls\n");
    write(&d, "c2.yaml", "apiVersion: networking.internal.knative.dev/v1alpha1\nkind: Certificate\nmetadata:\n  name: tls\n  namespace: web\nspec: {}\n");
    write(&d, "svc.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: tls\n  namespace: web\nspec: {}\n");
    env.snapshot(&d, "2026-01-01T00:00:00Z", &[]);
    let (code, err) = env.fail(&["restore", "latest", "certificate/tls", "--stdout"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("Certificate.cert-manager.io") && err.contains("Certificate.networking.internal.knative.dev"),
        "{err}"
    );
    let table = [
        ("certificates.cert-manager.io/tls", "secretName: tls"),
        ("cert/tls", "secretName: tls"),
        ("kcert/tls", "networking.internal.knative.dev"),
        ("Certificate.networking.internal.knative.dev/tls", "networking.internal.knative.dev"),
        ("svc/tls", "kind: Service"),
        ("services/tls", "kind: Service"),
    ];
    for (name, want) in table {
        let out = env.ok(&["restore", "latest", name, "--stdout"]);
        assert!(out.contains(want), "{name}: {out}");
    }
}

#[test]
fn custom_resources_without_their_crd_resolve_by_kind() {
    let env = Env::new();
    let d = env.path("d");
    write(
        &d,
        "g.yaml",
        "apiVersion: example.org/v1\nkind: Gadget\nmetadata:\n  name: g1\n  namespace: team\nspec: {}\n",
    );
    env.snapshot(&d, "2026-01-01T00:00:00Z", &[]);
    let out = env.ok(&["restore", "latest", "gadget/g1", "--stdout"]);
    assert!(out.contains("kind: Gadget"));
    let out = env.ok(&["restore", "latest", "Gadget.example.org/g1", "--stdout"]);
    assert!(out.contains("kind: Gadget"));
}

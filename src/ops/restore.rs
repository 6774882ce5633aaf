//! `kubesnap restore … (--to-dir DIR | --stdout)`: resources as they were, as YAML that kubectl
//! reads back to the same values.
//!
//! Only the blobs of the chosen resources are read, through the few tree nodes on their path:
//! the work does not grow with the number of snapshots or of resources in the repository.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::select::{self, Filter};
use crate::format::resource::ResourceRef;
use crate::format::snapshot::SnapshotManifest;
use crate::format::tree::ResourceEntry;
use crate::format::SnapshotId;
use crate::k8s::restore::{self as cleanup, CleanOptions};
use crate::k8s::yaml;
use crate::repo::Repository;
use crate::{Error, Result};

#[derive(Clone, Debug)]
pub enum Output {
    /// One file per resource under this folder (the dump layout).
    Dir(PathBuf),
    /// A multi-document YAML stream on standard output.
    Stdout,
}

#[derive(Clone, Debug)]
pub struct RestoreOptions {
    /// `TYPE/NAME` resources; empty: every resource passing the filter.
    pub resources: Vec<String>,
    pub filter: Filter,
    /// Also the server-owned fields (status, uid, resourceVersion...).
    pub server_fields: bool,
    /// The clean-up `restore --apply` does ([`crate::k8s::restore`]), for files meant for
    /// `kubectl apply`: owner references are dropped (there is no cluster to re-point them to),
    /// and objects that restore never applies, that a controller owns, or Secrets of a snapshot
    /// taken with `--redact-secrets` (their values were not stored) are left out.
    pub clean: Option<CleanOptions>,
    pub output: Output,
}

#[derive(Clone, Debug, Serialize)]
pub struct Restored {
    #[serde(flatten)]
    pub resource: ResourceRef,
    /// The file written, with `--to-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `safe()` of the dump layout: bytes outside `[A-Za-z0-9._-]` become `%XX` (the character's
/// code point in hex, at least two digits).
pub fn safe_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
        } else {
            out.push_str(&format!("%{:02X}", c as u32));
        }
    }
    out
}

/// Where a resource goes in the dump layout: `cluster/<Kind>.<group>/<name>.yaml` or
/// `namespaces/<ns>/<Kind>.<group>/<name>.yaml` (group `core` for the core API; file names over
/// 200 bytes shortened to 180 and `~` and 10 hex digits of the SHA-1 of the escaped name).
pub fn dump_path(r: &ResourceRef) -> PathBuf {
    let group = if r.group.is_empty() { "core" } else { &r.group };
    let kind_dir = safe_component(&format!("{}.{}", r.kind, group));
    let mut name = safe_component(&r.name);
    if name.len() > 200 {
        let digest = sha1_smol::Sha1::from(name.as_bytes()).digest().to_string();
        name = format!("{}~{}", &name[..180], &digest[..10]);
    }
    name.push_str(".yaml");
    if r.namespace.is_empty() {
        Path::new("cluster").join(kind_dir).join(name)
    } else {
        Path::new("namespaces").join(safe_component(&r.namespace)).join(kind_dir).join(name)
    }
}

/// The resources of a snapshot chosen by names and filters.
pub fn choose(
    repo: &Repository,
    m: &SnapshotManifest,
    resources: &[String],
    filter: &Filter,
) -> Result<Vec<(ResourceRef, ResourceEntry)>> {
    let mut out = Vec::new();
    if resources.is_empty() {
        select::walk_filtered(repo, &m.roots, filter, &mut |r, e| {
            out.push((r, e));
            Ok(())
        })?;
    } else {
        for spec in resources {
            let (kind, name) = select::resolve_resource(repo, m, spec)?;
            out.push(select::find_resource(repo, &m.roots, &kind, &name, filter.namespace.as_deref())?);
        }
    }
    Ok(out)
}

pub fn restore(
    repo: &Repository,
    snapshot: &SnapshotId,
    opts: &RestoreOptions,
    out: &mut dyn std::io::Write,
) -> Result<Vec<Restored>> {
    let m = repo.load_manifest(snapshot)?;
    let chosen = choose(repo, &m, &opts.resources, &opts.filter)?;
    let redacted = opts.clean.is_some() && m.secrets_redacted();
    let mut done = Vec::with_capacity(chosen.len());
    for (r, e) in chosen {
        let mut value = super::read_resource(repo, &e, opts.server_fields)?;
        if let Some(c) = &opts.clean {
            let redacted_secret = redacted && r.group.is_empty() && r.kind == "Secret";
            if e.owned || redacted_secret || cleanup::never_restored(&value).is_some() {
                continue;
            }
            cleanup::clean(&mut value, c);
            if let Some(Value::Object(meta)) = value.get_mut("metadata") {
                meta.shift_remove("ownerReferences");
            }
        }
        let r = match &opts.clean {
            Some(_) => crate::format::resource::identity_of(&value).unwrap_or(r),
            None => r,
        };
        let text = yaml::to_yaml(&value);
        match &opts.output {
            Output::Stdout => {
                let sep = if done.is_empty() { "" } else { "---\n" };
                out.write_all(format!("{sep}{text}").as_bytes())
                    .map_err(|e| Error::Io("cannot write the output".into(), e))?;
                done.push(Restored { resource: r, path: None });
            }
            Output::Dir(dir) => {
                let rel = dump_path(&r);
                let path = dir.join(&rel);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| Error::Io(format!("cannot create {}", parent.display()), e))?;
                }
                std::fs::write(&path, text).map_err(|e| Error::Io(format!("cannot write {}", path.display()), e))?;
                done.push(Restored { resource: r, path: Some(rel.display().to_string()) });
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_paths_match_gen_history() {
        let r = |g: &str, k: &str, ns: &str, n: &str| ResourceRef {
            group: g.into(),
            kind: k.into(),
            namespace: ns.into(),
            name: n.into(),
        };
        let table = [
            (r("", "ConfigMap", "shop", "web"), "namespaces/shop/ConfigMap.core/web.yaml"),
            (r("apps", "Deployment", "a-b", "x.y"), "namespaces/a-b/Deployment.apps/x.y.yaml"),
            (
                r("rbac.authorization.k8s.io", "ClusterRole", "", "system:aggregate"),
                "cluster/ClusterRole.rbac.authorization.k8s.io/system%3Aaggregate.yaml",
            ),
            (r("", "ConfigMap", "n", "é"), "namespaces/n/ConfigMap.core/%E9.yaml"),
        ];
        for (input, want) in table {
            assert_eq!(dump_path(&input).display().to_string(), want);
        }
        let long = "a".repeat(253);
        let p = dump_path(&r("", "ConfigMap", "n", &long)).display().to_string();
        // python3: "a"*180 + "~" + hashlib.sha1(("a"*253).encode()).hexdigest()[:10]
        assert!(p.starts_with(&format!("namespaces/n/ConfigMap.core/{}~", "a".repeat(180))));
        assert_eq!(p.len(), "namespaces/n/ConfigMap.core/".len() + 180 + 1 + 10 + 5);
    }
}

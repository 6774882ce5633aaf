//! Loading a folder of YAML or JSON manifests into a cluster, for example one day of
//! `gen-history` output (`day-00/cluster/<Kind>.<group>/<name>.yaml`,
//! `day-00/namespaces/<ns>/<Kind>.<group>/<name>.yaml`).
//!
//! Every `.yaml`, `.yml` and `.json` file below the folder is read (in path order), each
//! document of it, with `kind: List` documents expanded into their items. Objects are served
//! as given: `uid`, `resourceVersion`, `status`, `managedFields` and the rest are kept, and
//! assigned only where absent. CustomResourceDefinitions are loaded first so that their
//! resources exist; an object of a kind nothing defines gets an implied type (see
//! [`crate::types`]). The file's path plays no part: identity is `apiVersion`, `kind`,
//! `metadata.namespace` and `metadata.name`, so a later file with the same identity replaces
//! an earlier one. Namespaces that objects live in are not created unless a file defines them.
//!
//! YAML is read as Kubernetes reads it (see [`crate::yaml`]); the reader is exact for
//! gen-history's PyYAML output, which quotes every ambiguous string.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cluster::Cluster;

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Objects stored.
    pub loaded: usize,
    /// Documents skipped, with the file and why.
    pub skipped: Vec<(PathBuf, String)>,
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "yaml" | "yml" | "json")) {
            out.push(p);
        }
    }
    Ok(())
}

fn expand(v: Value, out: &mut Vec<Value>) {
    let is_list = v.get("kind").and_then(Value::as_str).is_some_and(|k| k == "List" || k.ends_with("List"))
        && v.get("items").is_some_and(Value::is_array);
    if is_list {
        if let Some(Value::Array(items)) = v.get("items") {
            for i in items {
                expand(i.clone(), out);
            }
        }
    } else if v.is_object() {
        out.push(v);
    }
}

/// Loads every manifest below `dir` (a file is fine too).
///
/// # Errors
/// An I/O error listing the folder; unreadable files and documents are reported in
/// [`LoadReport::skipped`] instead.
pub fn load_dir(cluster: &Cluster, dir: &Path) -> std::io::Result<LoadReport> {
    let mut files = Vec::new();
    if dir.is_file() {
        files.push(dir.to_path_buf());
    } else {
        collect(dir, &mut files)?;
    }
    let mut report = LoadReport::default();
    let mut objects: Vec<(PathBuf, Value)> = Vec::new();
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                report.skipped.push((f, e.to_string()));
                continue;
            }
        };
        let docs = if f.extension().is_some_and(|e| e == "json") {
            serde_json::from_str::<Value>(&text).map(|v| vec![v]).map_err(|e| e.to_string())
        } else {
            crate::yaml::parse_documents(&text).map_err(|e| e.to_string())
        };
        match docs {
            Ok(docs) => {
                let mut expanded = Vec::new();
                for d in docs {
                    expand(d, &mut expanded);
                }
                objects.extend(expanded.into_iter().map(|o| (f.clone(), o)));
            }
            Err(e) => report.skipped.push((f, e)),
        }
    }
    let is_crd = |o: &Value| o.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition");
    let (crds, others): (Vec<_>, Vec<_>) = objects.into_iter().partition(|(_, o)| is_crd(o));
    for (f, o) in crds.into_iter().chain(others) {
        match cluster.load_object(o) {
            Ok(()) => report.loaded += 1,
            Err(e) => report.skipped.push((f, e)),
        }
    }
    Ok(report)
}

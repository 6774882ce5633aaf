//! A dump folder as a source of objects: every `.yaml`, `.yml` and `.json` file below a folder
//! (multi-document files and `List` wrappers included), as kube-dump, Stash, `kubectl get -o
//! yaml` or a GitOps repository leave them.
//!
//! An object's identity is its own group, kind, namespace and name, never the file's path.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::format::resource::identity_of;
use crate::k8s::yaml;

/// A document that is not a usable object, with where it is.
#[derive(Debug, Clone)]
pub struct DocError {
    pub file: String,
    /// 1-based document number in the file (0: the whole file).
    pub doc: usize,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for DocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.doc == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: document {} (line {}): {}", self.file, self.doc, self.line, self.message)
        }
    }
}

/// One object read from a file.
pub struct SourceObject {
    /// 1-based document number in the file (items of a List share their List's number).
    pub doc: usize,
    pub value: Value,
}

/// Every candidate file below `root`, sorted, as paths relative to `root`.
pub fn list_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let ft = entry.file_type()?;
            let is_dir = ft.is_dir() || (ft.is_symlink() && path.is_dir());
            if is_dir {
                stack.push(path);
            } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
                out.push(path.strip_prefix(root).map(Path::to_path_buf).unwrap_or(path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Parses one file into objects, or says why its documents are not objects.
pub fn parse_file(root: &Path, rel: &Path) -> (Vec<SourceObject>, Vec<DocError>) {
    match std::fs::read(root.join(rel)) {
        Ok(b) => parse_bytes(rel, b),
        Err(e) => (
            Vec::new(),
            vec![DocError { file: rel.display().to_string(), doc: 0, line: 0, message: format!("cannot read: {e}") }],
        ),
    }
}

/// Parses the bytes of file `rel` (`.json` files as JSON, others as YAML).
pub fn parse_bytes(rel: &Path, bytes: Vec<u8>) -> (Vec<SourceObject>, Vec<DocError>) {
    let file = rel.display().to_string();
    let err = |doc: usize, line: usize, message: String| DocError { file: file.clone(), doc, line, message };
    let Ok(text) = String::from_utf8(bytes) else {
        return (Vec::new(), vec![err(0, 0, "is not UTF-8 text".into())]);
    };
    let docs: Vec<(usize, usize, Value)> = if rel.extension().and_then(|e| e.to_str()) == Some("json") {
        let mut v = Vec::new();
        for (i, d) in serde_json::Deserializer::from_str(&text).into_iter::<Value>().enumerate() {
            match d {
                Ok(value) => v.push((i + 1, 1, value)),
                Err(e) => return (Vec::new(), vec![err(i + 1, e.line(), format!("does not parse as JSON: {e}"))]),
            }
        }
        v
    } else {
        match yaml::parse_documents(&text) {
            Ok(docs) => docs.into_iter().map(|d| (d.index + 1, d.line, d.value)).collect(),
            Err(e) => return (Vec::new(), vec![err(0, 0, format!("does not parse as YAML: {e}"))]),
        }
    };
    let mut objects = Vec::new();
    let mut errors = Vec::new();
    for (doc, line, value) in docs {
        if value.is_null() {
            continue; // an empty document (only comments, or `---` twice)
        }
        for item in expand_list(value) {
            match item.and_then(|v| identity_of(&v).map(|_| v).map_err(|e| e.to_string())) {
                Ok(v) => objects.push(SourceObject { doc, value: v }),
                Err(message) => errors.push(err(doc, line, format!("not a Kubernetes object with a name: {message}"))),
            }
        }
    }
    (objects, errors)
}

/// The items of a `List` (or `FooList`) wrapper, else the value itself. Items of a typed list
/// may omit apiVersion and kind; they get the list's.
fn expand_list(value: Value) -> Vec<Result<Value, String>> {
    let is_list = value.get("kind").and_then(Value::as_str).is_some_and(|k| k.ends_with("List"))
        && value.get("items").is_some_and(Value::is_array);
    if !is_list {
        return vec![Ok(value)];
    }
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or_default().to_owned();
    let api_version = value.get("apiVersion").cloned();
    let item_kind = kind.strip_suffix("List").filter(|k| !k.is_empty()).map(str::to_owned);
    let Some(Value::Array(items)) = value.get("items").cloned() else { return vec![] };
    items
        .into_iter()
        .map(|mut item| {
            let Some(map) = item.as_object_mut() else { return Err(format!("an item of the {kind} is not a mapping")) };
            if !map.contains_key("kind") {
                if let Some(k) = &item_kind {
                    map.insert("kind".into(), Value::String(k.clone()));
                }
            }
            if !map.contains_key("apiVersion") {
                if let Some(v) = &api_version {
                    map.insert("apiVersion".into(), v.clone());
                }
            }
            Ok(item)
        })
        .collect()
}

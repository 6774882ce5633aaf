//! A resource's identity, and its split into desired state and server-owned fields.
//!
//! The list of server-owned fields is part of format version 1 (changing it would change every
//! blob id): `metadata.uid`, `metadata.resourceVersion`, `metadata.generation`,
//! `metadata.creationTimestamp`, `metadata.managedFields`, `metadata.selfLink` and the top-level
//! `status`. Both parts are stored; nothing is dropped. An object whose only change is
//! server-owned keeps its desired-state blob.
//!
//! Parts are stored as canonical JSON (see [`canonical_json`]) so that the same object always
//! gives the same bytes, whatever order a dumper wrote its keys in.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Server-owned fields under `metadata`, format version 1.
pub const SERVER_OWNED_METADATA: [&str; 6] =
    ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink"];
/// Server-owned top-level fields, format version 1.
pub const SERVER_OWNED_TOP: [&str; 1] = ["status"];

/// Which resource: `{"group", "kind", "namespace", "name"}`, ordered in that order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceRef {
    /// `""` for the core API.
    pub group: String,
    pub kind: String,
    /// `""` when the resource has none.
    pub namespace: String,
    pub name: String,
}

impl ResourceRef {
    /// `Kind.group/name` (or `Kind/name` for the core API), with `-n ns` shown by callers.
    pub fn type_name(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// kubectl-like display: `Deployment.apps/web -n shop`.
    pub fn display(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.type_name(), self.name)
        } else {
            format!("{}/{} -n {}", self.type_name(), self.name, self.namespace)
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error("not a mapping")]
    NotAnObject,
    #[error("no apiVersion")]
    NoApiVersion,
    #[error("no kind")]
    NoKind,
    #[error("no metadata.name (an object with only generateName is a template, not a resource)")]
    GenerateNameOnly,
    #[error("no metadata.name")]
    NoName,
    #[error("metadata.namespace is not a string (YAML as Kubernetes reads it makes a bare n, no, y, yes, on, off a boolean: quote it)")]
    BadNamespace,
}

/// The group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map(|(g, _)| g).unwrap_or("")
}

/// The identity of an object, or why it is not a named Kubernetes object.
pub fn identity_of(obj: &Value) -> Result<ResourceRef, IdentityError> {
    let map = obj.as_object().ok_or(IdentityError::NotAnObject)?;
    let api_version = match map.get("apiVersion") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return Err(IdentityError::NoApiVersion),
    };
    let kind = match map.get("kind") {
        Some(Value::String(s)) if !s.is_empty() => s,
        _ => return Err(IdentityError::NoKind),
    };
    let meta = map.get("metadata").and_then(Value::as_object);
    let name = match meta.and_then(|m| m.get("name")) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => {
            if meta.and_then(|m| m.get("generateName")).is_some() {
                return Err(IdentityError::GenerateNameOnly);
            }
            return Err(IdentityError::NoName);
        }
    };
    let namespace = match meta.and_then(|m| m.get("namespace")) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(IdentityError::BadNamespace),
    };
    Ok(ResourceRef { group: group_of(api_version).to_owned(), kind: kind.clone(), namespace, name })
}

/// Whether the object has a controller owner (ReplicaSets of a Deployment, its Pods...).
pub fn is_controller_owned(obj: &Value) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| refs.iter().any(|r| r.get("controller") == Some(&Value::Bool(true))))
}

/// The two parts of an object.
pub struct Split {
    pub desired: Value,
    /// `{"metadata": {...}, "status": ...}` holding only the server-owned fields present; None if none.
    pub server: Option<Value>,
}

/// Splits an object into desired state and server-owned fields.
pub fn split(mut obj: Value) -> Split {
    let mut server = Map::new();
    if let Some(map) = obj.as_object_mut() {
        let mut server_meta = Map::new();
        if let Some(Value::Object(meta)) = map.get_mut("metadata") {
            for k in SERVER_OWNED_METADATA {
                if let Some(v) = meta.shift_remove(k) {
                    server_meta.insert(k.to_owned(), v);
                }
            }
        }
        if !server_meta.is_empty() {
            server.insert("metadata".into(), Value::Object(server_meta));
        }
        for k in SERVER_OWNED_TOP {
            if let Some(v) = map.shift_remove(k) {
                server.insert(k.to_owned(), v);
            }
        }
    }
    Split { desired: obj, server: (!server.is_empty()).then_some(Value::Object(server)) }
}

/// Puts server-owned fields back into a desired state (the inverse of [`split`], as data).
pub fn merge(desired: &mut Value, server: Value) {
    let (Some(map), Value::Object(server)) = (desired.as_object_mut(), server) else { return };
    for (k, v) in server {
        if k == "metadata" {
            if let Value::Object(sm) = v {
                let meta = map.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
                if let Some(meta) = meta.as_object_mut() {
                    for (mk, mv) in sm {
                        meta.insert(mk, mv);
                    }
                }
            }
        } else {
            map.insert(k, v);
        }
    }
}

/// Canonical JSON: compact, keys sorted bytewise at every level, except that a top-level object
/// starts with `apiVersion`, `kind`, `metadata` and `metadata` with `name`, `namespace` (the
/// order people read). Numbers and strings as serde_json writes them.
pub fn canonical_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    write_value(&mut out, v, Position::Top);
    // Parts are held in the packer's buffer until a flush: keep only what they use.
    out.shrink_to_fit();
    out
}

#[derive(Clone, Copy, PartialEq)]
enum Position {
    Top,
    Metadata,
    Other,
}

fn write_value(out: &mut Vec<u8>, v: &Value, pos: Position) {
    match v {
        Value::Object(map) => {
            let first: &[&str] = match pos {
                Position::Top => &["apiVersion", "kind", "metadata"],
                Position::Metadata => &["name", "namespace"],
                Position::Other => &[],
            };
            let mut keys: Vec<&String> = map.keys().filter(|k| !first.contains(&k.as_str())).collect();
            keys.sort_unstable();
            out.push(b'{');
            let mut sep = false;
            let lead = first.iter().filter_map(|f| map.get_key_value(*f).map(|(k, _)| k));
            for k in lead.chain(keys) {
                if sep {
                    out.push(b',');
                }
                sep = true;
                write_string(out, k);
                out.push(b':');
                let child = if pos == Position::Top && k == "metadata" { Position::Metadata } else { Position::Other };
                write_value(out, &map[k.as_str()], child);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item, Position::Other);
            }
            out.push(b']');
        }
        other => {
            // Scalars: serde_json's own writer (cannot fail for a Value scalar).
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn split_and_merge_are_inverse_as_data() {
        let obj = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u", "resourceVersion": "7",
                         "generation": 3, "labels": {"a": "b"}, "managedFields": [], "creationTimestamp": "t"},
            "spec": {"replicas": 2}, "status": {"readyReplicas": 2}});
        let s = split(obj.clone());
        assert_eq!(
            s.desired,
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"a": "b"}}, "spec": {"replicas": 2}})
        );
        let mut back = s.desired.clone();
        merge(&mut back, s.server.clone().unwrap());
        assert_eq!(back, obj);
        let only_desired = split(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}));
        assert!(only_desired.server.is_none());
    }

    #[test]
    fn canonical_json_orders_keys() {
        let a = json!({"spec": {"b": 1, "a": [{"z": 1, "y": 2}]}, "metadata": {"labels": {}, "name": "x"}, "kind": "K", "apiVersion": "v1"});
        assert_eq!(
            String::from_utf8(canonical_json(&a)).unwrap(),
            r#"{"apiVersion":"v1","kind":"K","metadata":{"name":"x","labels":{}},"spec":{"a":[{"y":2,"z":1}],"b":1}}"#
        );
    }

    #[test]
    fn identities() {
        type Expected = Result<(&'static str, &'static str, &'static str, &'static str), IdentityError>;
        let table: &[(Value, Expected)] = &[
            (
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w", "namespace": "n"}}),
                Ok(("apps", "Deployment", "n", "w")),
            ),
            (
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}),
                Ok(("", "Namespace", "", "n")),
            ),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "p-"}}),
                Err(IdentityError::GenerateNameOnly),
            ),
            (json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}), Err(IdentityError::NoName)),
            (json!({"kind": "Pod", "metadata": {"name": "x"}}), Err(IdentityError::NoApiVersion)),
            (json!({"apiVersion": "v1", "metadata": {"name": "x"}}), Err(IdentityError::NoKind)),
            (json!(["a"]), Err(IdentityError::NotAnObject)),
            (
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": 3}}),
                Err(IdentityError::BadNamespace),
            ),
        ];
        for (input, expected) in table {
            let got = identity_of(input);
            match (got, expected) {
                (Ok(r), Ok((g, k, ns, n))) => assert_eq!(
                    (r.group.as_str(), r.kind.as_str(), r.namespace.as_str(), r.name.as_str()),
                    (*g, *k, *ns, *n)
                ),
                (Err(e), Err(x)) => assert_eq!(&e, x),
                (got, _) => panic!("{input}: got {got:?}, expected {expected:?}"),
            }
        }
    }
}

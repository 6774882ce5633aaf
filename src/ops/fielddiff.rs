//! Field-level differences between two versions of a resource, with Secret values hidden.

use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    /// `spec.template.spec.containers[0].image`; keys that are not plain words are quoted:
    /// `metadata.annotations["example.com/revision"]`.
    pub path: String,
    /// "added", "removed" or "changed".
    pub op: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<Value>,
}

fn push_key(path: &str, key: &str) -> String {
    let plain = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", serde_json::to_string(key).unwrap_or_default()),
    }
}

/// Every field that differs, in document order; arrays compare position by position.
pub fn diff_values(old: &Value, new: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

fn walk(path: &str, old: &Value, new: &Value, out: &mut Vec<FieldChange>) {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                let p = push_key(path, k);
                match b.get(k) {
                    Some(vb) => walk(&p, va, vb, out),
                    None => out.push(FieldChange { path: p, op: "removed", old: Some(va.clone()), new: None }),
                }
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    out.push(FieldChange { path: push_key(path, k), op: "added", old: None, new: Some(vb.clone()) });
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for i in 0..a.len().max(b.len()) {
                let p = format!("{path}[{i}]");
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) => walk(&p, x, y, out),
                    (Some(x), None) => {
                        out.push(FieldChange { path: p, op: "removed", old: Some(x.clone()), new: None })
                    }
                    (None, Some(y)) => out.push(FieldChange { path: p, op: "added", old: None, new: Some(y.clone()) }),
                    (None, None) => {}
                }
            }
        }
        (a, b) if a != b => {
            out.push(FieldChange { path: path.to_owned(), op: "changed", old: Some(a.clone()), new: Some(b.clone()) })
        }
        _ => {}
    }
}

/// Whether a resource is a Secret (core group).
pub fn is_secret(group: &str, kind: &str) -> bool {
    group.is_empty() && kind == "Secret"
}

fn secret_size(v: &Value, base64: bool) -> String {
    let n = match v {
        Value::String(s) if base64 => {
            base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map(|b| b.len()).unwrap_or(s.len())
        }
        Value::String(s) => s.len(),
        other => other.to_string().len(),
    };
    format!("(secret value, {n} bytes)")
}

/// Hides the values of a Secret's `data` and `stringData`, keeping keys and sizes.
pub fn redact_secret_changes(changes: &mut [FieldChange]) {
    for c in changes {
        let under =
            |f: &str| c.path == f || c.path.starts_with(&format!("{f}.")) || c.path.starts_with(&format!("{f}["));
        let base64 = under("data");
        if !(base64 || under("stringData")) {
            continue;
        }
        for v in [&mut c.old, &mut c.new].into_iter().flatten() {
            *v = match &*v {
                Value::Object(m) => {
                    Value::Object(m.iter().map(|(k, x)| (k.clone(), Value::String(secret_size(x, base64)))).collect())
                }
                other => Value::String(secret_size(other, base64)),
            };
        }
    }
}

/// A Secret object with its values replaced by their sizes.
pub fn redact_secret_object(v: &mut Value) {
    for (field, base64) in [("data", true), ("stringData", false)] {
        if let Some(Value::Object(m)) = v.get_mut(field) {
            for (_, x) in m.iter_mut() {
                *x = Value::String(secret_size(x, base64));
            }
        }
    }
}

/// One change as a line of text: `~ path: old -> new`.
pub fn format_change(c: &FieldChange) -> String {
    let show = |v: &Option<Value>| v.as_ref().map(|v| serde_json::to_string(v).unwrap_or_default()).unwrap_or_default();
    match c.op {
        "added" => format!("+ {}: {}", c.path, show(&c.new)),
        "removed" => format!("- {}: {}", c.path, show(&c.old)),
        _ => format!("~ {}: {} -> {}", c.path, show(&c.old), show(&c.new)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table() {
        let cases = [
            (json!({"a": 1}), json!({"a": 2}), vec!["~ a: 1 -> 2"]),
            (json!({"a": 1}), json!({"a": 1, "b": {"c": "x"}}), vec!["+ b: {\"c\":\"x\"}"]),
            (json!({"m": {"example.com/x": "1"}}), json!({"m": {}}), vec!["- m[\"example.com/x\"]: \"1\""]),
            (json!({"l": [1, 2]}), json!({"l": [1, 3, 4]}), vec!["~ l[1]: 2 -> 3", "+ l[2]: 4"]),
            (json!({"a": {"b": true}}), json!({"a": {"b": true}}), vec![]),
        ];
        for (a, b, want) in cases {
            let got: Vec<String> = diff_values(&a, &b).iter().map(format_change).collect();
            assert_eq!(got, want, "{a} -> {b}");
        }
    }

    #[test]
    fn secrets_are_hidden() {
        let mut c = diff_values(&json!({"data": {"k": "aGVsbG8="}}), &json!({"data": {"k": "aGk="}}));
        redact_secret_changes(&mut c);
        assert_eq!(format_change(&c[0]), "~ data.k: \"(secret value, 5 bytes)\" -> \"(secret value, 2 bytes)\"");
        let mut c = diff_values(&json!({}), &json!({"stringData": {"p": "pw"}}));
        redact_secret_changes(&mut c);
        assert!(!format_change(&c[0]).contains("pw"));
    }
}

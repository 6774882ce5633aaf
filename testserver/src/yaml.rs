//! YAML read the way Kubernetes reads it, for fixtures and `application/apply-patch+yaml` bodies.
//!
//! Kubernetes reads YAML through `sigs.k8s.io/yaml` (go-yaml v2, YAML 1.1 scalar rules) and then
//! converts to JSON. This module does the same on top of `saphyr-parser`'s events, for the plain
//! scalars that matter in manifests: `0644` is the octal integer 420, `yes`/`on`/`y` are `true`,
//! `no`/`off`/`n` are `false`, `~` and `null` are null, `1_000` is 1000, `09` is the float 9
//! (written back as the integer 9, as Go's JSON encoder would), unquoted timestamps stay strings.
//! Anchors, aliases and `<<` merge keys are resolved; mapping keys become strings (`1` → `"1"`,
//! `true` → `"true"`).
//!
//! Differences from Kubernetes, acceptable for a test server whose fixtures come from
//! `gen-history` (PyYAML output, which quotes every ambiguous string):
//! - explicit tags other than the core ones are ignored (the scalar is resolved as if untagged);
//! - duplicate keys keep the last value instead of failing;
//! - no bound on alias expansion (fixtures are trusted input; request bodies are JSON in practice).
//!
//! kubesnap itself has a complete reader (`kubesnap::k8s::yaml`); this one is kept separate so
//! that the test server does not depend on the crate it tests.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Tag};
use serde_json::{Map, Number, Value};

/// Why a YAML text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("YAML error at line {line}: {message}")]
pub struct YamlError {
    /// 1-based line of the problem.
    pub line: usize,
    /// What went wrong.
    pub message: String,
}

enum Frame {
    Seq { anchor: usize, items: Vec<Value> },
    Map { anchor: usize, map: Map<String, Value>, key: Option<String>, merges: Vec<Value> },
}

/// Reads every document of a YAML stream; empty documents are skipped.
///
/// # Errors
/// A [`YamlError`] for text that is not YAML, an unknown alias, or a non-scalar mapping key.
pub fn parse_documents(text: &str) -> Result<Vec<Value>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Value> = HashMap::new();
    let mut current: Option<Value> = None;
    let mut line;
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| YamlError { line: e.marker().line(), message: e.info().to_string() })?;
        line = span.start.line();
        let value = match event {
            Event::StreamStart | Event::Nothing | Event::StreamEnd => continue,
            Event::DocumentStart(_) => {
                current = None;
                anchors.clear();
                continue;
            }
            Event::DocumentEnd => {
                if let Some(v) = current.take() {
                    if !v.is_null() {
                        docs.push(v);
                    }
                }
                continue;
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq { anchor, items: Vec::new() });
                continue;
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map { anchor, map: Map::new(), key: None, merges: Vec::new() });
                continue;
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq { anchor, items }) => {
                    let v = Value::Array(items);
                    if anchor > 0 {
                        anchors.insert(anchor, v.clone());
                    }
                    v
                }
                _ => return Err(YamlError { line, message: "unbalanced sequence end".into() }),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map { anchor, mut map, merges, .. }) => {
                    for merged in merges {
                        let sources = match merged {
                            Value::Array(items) => items,
                            other => vec![other],
                        };
                        for source in sources {
                            if let Value::Object(m) = source {
                                for (k, v) in m {
                                    map.entry(k).or_insert(v);
                                }
                            }
                        }
                    }
                    let v = Value::Object(map);
                    if anchor > 0 {
                        anchors.insert(anchor, v.clone());
                    }
                    v
                }
                _ => return Err(YamlError { line, message: "unbalanced mapping end".into() }),
            },
            Event::Alias(id) => {
                anchors.get(&id).cloned().ok_or_else(|| YamlError { line, message: format!("unknown alias {id}") })?
            }
            Event::Scalar(text, style, anchor, tag) => {
                // A plain `<<` in key position is a merge key.
                if style == ScalarStyle::Plain && text == "<<" {
                    if let Some(Frame::Map { key: key @ None, .. }) = stack.last_mut() {
                        // Marked by a sentinel that cannot come from a scalar key.
                        *key = Some("\u{0}<<".into());
                        continue;
                    }
                }
                let v = resolve_scalar(&text, style, tag.as_deref());
                if anchor > 0 {
                    anchors.insert(anchor, v.clone());
                }
                v
            }
        };
        // Place the finished value in its parent.
        match stack.last_mut() {
            None => current = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { map, key, merges, .. }) => match key.take() {
                None => {
                    let k = key_text(&value)
                        .ok_or_else(|| YamlError { line, message: "a mapping key must be a scalar".into() })?;
                    *key = Some(k);
                }
                Some(k) if k == "\u{0}<<" => merges.push(value),
                Some(k) => {
                    map.insert(k, value);
                }
            },
        }
    }
    if let Some(v) = current.take() {
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// Reads a single JSON or YAML document (JSON first, as Kubernetes does for bodies).
///
/// # Errors
/// A [`YamlError`] when the text is neither, or holds more than one document.
pub fn parse_one(text: &str) -> Result<Value, YamlError> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    let mut docs = parse_documents(text)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(docs.remove(0)),
        n => Err(YamlError { line: 1, message: format!("expected one document, found {n}") }),
    }
}

fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        _ => None,
    }
}

fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&Tag>) -> Value {
    if let Some(tag) = tag {
        if tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:" {
            match tag.suffix.as_str() {
                "str" | "binary" | "timestamp" => return Value::String(text.to_string()),
                "int" | "float" | "bool" | "null" => return resolve_plain(text),
                _ => {}
            }
        }
    }
    if style == ScalarStyle::Plain {
        resolve_plain(text)
    } else {
        Value::String(text.to_string())
    }
}

/// go-yaml v2's `resolve` for an untagged plain scalar.
fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => return Value::Bool(true),
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | ".nan" | ".NaN"
        | ".NAN" => {
            // JSON cannot hold these; Kubernetes rejects them. Keep the text.
            return Value::String(text.to_string());
        }
        _ => {}
    }
    let first = text.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return Value::String(text.to_string());
    }
    let plain: String = text.chars().filter(|&c| c != '_').collect();
    if let Some(i) = parse_go_int(&plain) {
        return Value::Number(Number::from(i));
    }
    if is_yaml_float(&plain) {
        if let Ok(f) = plain.parse::<f64>() {
            return float_value(f);
        }
    }
    Value::String(text.to_string())
}

fn float_value(f: f64) -> Value {
    // Go's JSON encoder writes an integral float64 without a fraction; read back, it is an int.
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)] // reason: integral and well inside i64
        return Value::Number(Number::from(f as i64));
    }
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// `strconv.ParseInt(s, 0, 64)`, then `ParseUint`: sign, `0x`, `0o`, `0b`, leading-`0` octal.
fn parse_go_int(s: &str) -> Option<i64> {
    let (negative, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_as_kubernetes_reads_them() {
        let cases: &[(&str, Value)] = &[
            ("0644", json!(420)),
            ("'0644'", json!("0644")),
            ("0o17", json!(15)),
            ("0x1F", json!(31)),
            ("1_000", json!(1000)),
            ("09", json!(9)),
            ("1.5", json!(1.5)),
            ("-3", json!(-3)),
            ("yes", json!(true)),
            ("Off", json!(false)),
            ("y", json!(true)),
            ("~", Value::Null),
            ("2024-01-01", json!("2024-01-01")),
            ("'2026-01-01T00:00:00Z'", json!("2026-01-01T00:00:00Z")),
            ("1.2.3", json!("1.2.3")),
            ("\"yes\"", json!("yes")),
            ("!!str 0644", json!("0644")),
            ("-x", json!("-x")),
            ("+", json!("+")),
            (".", json!(".")),
            ("99999999999999999999", json!(1e20)),
        ];
        for (text, want) in cases {
            let got = parse_documents(&format!("v: {text}\n")).map(|mut d| d.remove(0));
            assert_eq!(got, Ok(json!({ "v": want })), "{text}");
        }
    }

    #[test]
    fn documents_anchors_merges_and_keys() {
        let text = "a: &x {p: 1}\nb: *x\nc:\n  <<: *x\n  q: 2\n1: one\ntrue: t\n---\n---\n- 1\n- two\n";
        let docs = parse_documents(text).unwrap_or_default();
        assert_eq!(
            docs,
            vec![
                json!({"a": {"p": 1}, "b": {"p": 1}, "c": {"q": 2, "p": 1}, "1": "one", "true": "t"}),
                json!([1, "two"]),
            ]
        );
    }

    #[test]
    fn errors_do_not_panic() {
        for text in ["a: [1, 2", "{a: 1", "- a\nb: c", "? [1]\n: 2\n", "*unknown"] {
            let _ = parse_documents(text);
        }
        assert!(parse_documents("? [1]\n: 2\n").is_err());
        assert_eq!(parse_one("{\"a\": 1}"), Ok(json!({"a": 1})));
        assert!(parse_one("a: 1\n---\nb: 2\n").is_err());
    }
}

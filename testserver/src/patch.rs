//! The three patch formats of `PATCH` besides server-side apply: JSON merge patch (RFC 7386),
//! JSON patch (RFC 6902) and Kubernetes' strategic merge patch.
//!
//! Strategic merge patch needs each list's merge key from the Go types' `patchMergeKey` tags.
//! Without the Go types, this server knows them by field name ([`smp_merge_key`]): containers,
//! initContainers, ephemeralContainers, env, volumes, imagePullSecrets, resourceClaims,
//! schedulingGates and webhooks by `name`; volumeMounts by `mountPath`; volumeDevices by
//! `devicePath`; container ports by `containerPort`, service ports by `port`; hostAliases by `ip`;
//! conditions by `type`; topologySpreadConstraints by `topologyKey`; ownerReferences by `uid`;
//! `finalizers` merges as a set of strings. Every other list is replaced. The directives kubectl
//! sends are honoured: `$patch: replace|delete|merge`, `$retainKeys`, `$setElementOrder/<field>`
//! and `$deleteFromPrimitiveList/<field>`. As in Kubernetes, strategic merge patch is refused
//! (415) for custom resources.

use serde_json::{Map, Value};

/// Merge patch (RFC 7386): objects merge recursively, `null` deletes, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn pointer_parts(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(Vec::new());
    }
    let rest = path.strip_prefix('/').ok_or_else(|| format!("invalid JSON pointer {path:?}"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn parent_and_last<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let mut parts = pointer_parts(path)?;
    let last = parts.pop().ok_or_else(|| "the root cannot be the target of this operation".to_string())?;
    let mut cur = doc;
    for p in &parts {
        cur = match cur {
            Value::Object(m) => m.get_mut(p).ok_or_else(|| format!("path {path:?} does not exist"))?,
            Value::Array(a) => {
                let i: usize = p.parse().map_err(|_| format!("invalid index {p:?} in {path:?}"))?;
                a.get_mut(i).ok_or_else(|| format!("index {i} out of range in {path:?}"))?
            }
            _ => return Err(format!("path {path:?} does not exist")),
        };
    }
    Ok((cur, last))
}

fn get_path<'a>(doc: &'a Value, path: &str) -> Result<&'a Value, String> {
    let mut cur = doc;
    for p in pointer_parts(path)? {
        cur = match cur {
            Value::Object(m) => m.get(&p),
            Value::Array(a) => p.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        }
        .ok_or_else(|| format!("path {path:?} does not exist"))?;
    }
    Ok(cur)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = parent_and_last(doc, path)?;
    match parent {
        Value::Object(m) => {
            m.insert(last, value);
            Ok(())
        }
        Value::Array(a) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>().map_err(|_| format!("invalid index {last:?}"))?
            };
            if i > a.len() {
                return Err(format!("index {i} out of range in {path:?}"));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err(format!("path {path:?} does not exist")),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = parent_and_last(doc, path)?;
    match parent {
        Value::Object(m) => {
            m.remove(&last).ok_or_else(|| format!("unable to remove nonexistent key: {last}: missing value"))
        }
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| format!("invalid index {last:?}"))?;
            if i >= a.len() {
                return Err(format!("index {i} out of range in {path:?}"));
            }
            Ok(a.remove(i))
        }
        _ => Err(format!("path {path:?} does not exist")),
    }
}

/// JSON patch (RFC 6902): `add`, `remove`, `replace`, `move`, `copy`, `test`.
///
/// # Errors
/// A message when an operation is malformed, its path does not exist, or a `test` fails.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch must be a list of operations")?;
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).ok_or("an operation has no \"op\"")?;
        let path = op.get("path").and_then(Value::as_str).ok_or("an operation has no \"path\"")?;
        let value = || op.get("value").cloned().ok_or_else(|| format!("{name} operation has no \"value\""));
        let from = || op.get("from").and_then(Value::as_str).ok_or_else(|| format!("{name} operation has no \"from\""));
        match name {
            "add" => add(doc, path, value()?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => {
                let v = value()?;
                if path.is_empty() {
                    *doc = v;
                } else {
                    remove(doc, path)
                        .map_err(|_| format!("replace operation does not apply: doc is missing key: {path}"))?;
                    add(doc, path, v)?;
                }
            }
            "move" => {
                let v = remove(doc, from()?)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let v = get_path(doc, from()?)?.clone();
                add(doc, path, v)?;
            }
            "test" => {
                if get_path(doc, path)? != &value()? {
                    return Err(format!("testing value {path} failed"));
                }
            }
            other => return Err(format!("unexpected kind: {other}")),
        }
    }
    Ok(())
}

/// The strategic-merge-patch merge key of a list field, from its name and items: the first key
/// of the same table server-side apply uses (`fields::builtin_list_type`).
pub fn smp_merge_key(field: &str, items: &[Value]) -> Option<String> {
    match crate::fields::builtin_list_type(field, items) {
        crate::types::ListType::Map(keys) => keys.into_iter().next(),
        _ => None,
    }
}

/// Lists of strings that strategic merge patch merges as sets.
fn smp_primitive_merge(field: &str) -> bool {
    field == "finalizers"
}

/// Removes `$` directives from a value being inserted as-is.
fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter().filter(|(k, _)| !k.starts_with('$')).map(|(k, v)| (k.clone(), strip_directives(v))).collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().filter(|i| i.get("$patch").is_none()).map(strip_directives).collect()),
        other => other.clone(),
    }
}

/// Strategic merge patch.
///
/// # Errors
/// A message for a malformed directive.
pub fn strategic_merge_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let Value::Object(p) = patch else { return Err("a strategic merge patch must be an object".into()) };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        if !smp_map(t, p)? {
            t.clear();
        }
    }
    Ok(())
}

/// Merges `patch` into `target`; false when the patch deletes the map.
fn smp_map(target: &mut Map<String, Value>, patch: &Map<String, Value>) -> Result<bool, String> {
    match patch.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            *target = match strip_directives(&Value::Object(patch.clone())) {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            return Ok(true);
        }
        Some("delete") => return Ok(false),
        Some("merge") | None => {}
        Some(other) => return Err(format!("unknown patch type: {other}")),
    }
    let mut orders: Vec<(String, &Vec<Value>)> = Vec::new();
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix("$setElementOrder/") {
            if let Value::Array(order) = v {
                orders.push((field.to_string(), order));
            }
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(gone)) = (target.get_mut(field), v) {
                list.retain(|x| !gone.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(pm) => match target.get_mut(k) {
                Some(Value::Object(tm)) => {
                    if !smp_map(tm, pm)? {
                        target.remove(k);
                    }
                }
                _ => {
                    if pm.get("$patch").and_then(Value::as_str) != Some("delete") {
                        target.insert(k.clone(), strip_directives(v));
                    }
                }
            },
            Value::Array(pa) => {
                let merged = smp_list(k, target.get(k), pa)?;
                target.insert(k.clone(), Value::Array(merged));
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
    if let Some(Value::Array(keep)) = patch.get("$retainKeys") {
        let keep: Vec<&str> = keep.iter().filter_map(Value::as_str).collect();
        target.retain(|k, _| keep.contains(&k.as_str()));
    }
    for (field, order) in orders {
        if let Some(Value::Array(list)) = target.get_mut(&field) {
            reorder(&field, list, order);
        }
    }
    Ok(true)
}

fn item_key<'a>(item: &'a Value, key: &str) -> Option<&'a Value> {
    item.get(key)
}

fn smp_list(field: &str, original: Option<&Value>, patch: &[Value]) -> Result<Vec<Value>, String> {
    let orig: Vec<Value> = original.and_then(Value::as_array).cloned().unwrap_or_default();
    let all: Vec<Value> = orig.iter().chain(patch.iter()).cloned().collect();
    if patch.iter().all(Value::is_object) && !patch.is_empty() {
        if let Some(key) = smp_merge_key(field, &all) {
            let key = key.as_str();
            if patch.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace")) {
                return Ok(patch.iter().filter(|i| i.get("$patch").is_none()).map(strip_directives).collect());
            }
            let mut out = orig;
            for item in patch {
                let Value::Object(pm) = item else { continue };
                let k = item_key(item, key);
                let pos = k.and_then(|kv| out.iter().position(|o| item_key(o, key) == Some(kv)));
                if pm.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = pos {
                        out.remove(i);
                    }
                    continue;
                }
                match pos {
                    Some(i) => {
                        if let Value::Object(om) = &mut out[i] {
                            if !smp_map(om, pm)? {
                                out.remove(i);
                            }
                        }
                    }
                    None => out.push(strip_directives(item)),
                }
            }
            return Ok(out);
        }
    }
    if smp_primitive_merge(field) {
        let mut out = orig;
        for item in patch {
            if !out.contains(item) {
                out.push(item.clone());
            }
        }
        return Ok(out);
    }
    Ok(patch.iter().map(strip_directives).collect())
}

/// `$setElementOrder`: items named in `order` first, in that order, then the rest as they were.
fn reorder(field: &str, list: &mut Vec<Value>, order: &[Value]) {
    let key = smp_merge_key(field, list);
    let matches = |item: &Value, o: &Value| match (key.as_deref(), o) {
        (Some(k), Value::Object(_)) => item.get(k).is_some() && item.get(k) == o.get(k),
        _ => item == o,
    };
    let mut rest = std::mem::take(list);
    for o in order {
        if let Some(i) = rest.iter().position(|item| matches(item, o)) {
            list.push(rest.remove(i));
        }
    }
    list.extend(rest);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patches() {
        let cases = [
            (json!({"a": 1, "b": {"c": 2, "d": 3}}), json!({"a": null, "b": {"c": 4}}), json!({"b": {"c": 4, "d": 3}})),
            (json!({"a": [1, 2]}), json!({"a": [3]}), json!({"a": [3]})),
            (json!({"a": 1}), json!({"b": {"c": null}}), json!({"a": 1, "b": {}})),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want);
        }
    }

    #[test]
    fn json_patches() {
        let doc = json!({"a": {"b": [1, 2]}, "c": "x"});
        let cases = [
            (json!([{"op": "add", "path": "/a/b/-", "value": 3}]), Ok(json!({"a": {"b": [1, 2, 3]}, "c": "x"}))),
            (json!([{"op": "add", "path": "/a/b/0", "value": 0}]), Ok(json!({"a": {"b": [0, 1, 2]}, "c": "x"}))),
            (json!([{"op": "remove", "path": "/c"}]), Ok(json!({"a": {"b": [1, 2]}}))),
            (json!([{"op": "replace", "path": "/c", "value": "y"}]), Ok(json!({"a": {"b": [1, 2]}, "c": "y"}))),
            (json!([{"op": "move", "from": "/c", "path": "/d"}]), Ok(json!({"a": {"b": [1, 2]}, "d": "x"}))),
            (
                json!([{"op": "copy", "from": "/c", "path": "/a/e"}]),
                Ok(json!({"a": {"b": [1, 2], "e": "x"}, "c": "x"})),
            ),
            (json!([{"op": "test", "path": "/c", "value": "x"}]), Ok(doc.clone())),
        ];
        for (ops, want) in cases {
            let mut d = doc.clone();
            let got = json_patch(&mut d, &ops).map(|()| d);
            assert_eq!(got, want, "{ops}");
        }
        for bad in [
            json!([{"op": "test", "path": "/c", "value": "z"}]),
            json!([{"op": "remove", "path": "/zz"}]),
            json!([{"op": "replace", "path": "/zz", "value": 1}]),
            json!([{"op": "add", "path": "/a/b/9", "value": 1}]),
            json!([{"op": "frob", "path": "/c"}]),
            json!({"op": "add"}),
            json!([{"op": "add", "path": "c", "value": 1}]),
        ] {
            let mut d = doc.clone();
            assert!(json_patch(&mut d, &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn strategic_merge_patches() {
        let deploy = json!({"metadata": {"finalizers": ["a"]}, "spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]},
            {"name": "side", "image": "busybox"}
        ], "tolerations": [{"key": "x"}]}}}});
        let cases = [
            // Merge a container by name; other containers stay.
            (
                json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:2"}]}}}}),
                json!({"metadata": {"finalizers": ["a"]}, "spec": {"template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:2", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]},
                {"name": "side", "image": "busybox"}], "tolerations": [{"key": "x"}]}}}}),
            ),
            // Delete a container; replace tolerations (no merge key); union finalizers.
            (
                json!({"metadata": {"finalizers": ["b"]}, "spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}], "tolerations": [{"key": "y"}]}}}}),
                json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"template": {"spec": {"containers": [
                {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "1"}]}],
                "tolerations": [{"key": "y"}]}}}}),
            ),
            // kubectl edit's shape: $setElementOrder, a new env var, a removed field.
            (
                json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
                "containers": [{"name": "web", "$setElementOrder/env": [{"name": "B"}, {"name": "A"}], "env": [{"name": "B", "value": "2"}], "ports": null}]}}}}),
                json!({"metadata": {"finalizers": ["a"]}, "spec": {"template": {"spec": {"containers": [
                {"name": "side", "image": "busybox"},
                {"name": "web", "image": "nginx:1", "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}],
                "tolerations": [{"key": "x"}]}}}}),
            ),
            // $patch: replace on a map, $deleteFromPrimitiveList.
            (
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}, "spec": {"template": {"$patch": "replace", "spec": {}}}}),
                json!({"metadata": {"finalizers": []}, "spec": {"template": {"spec": {}}}}),
            ),
        ];
        for (patch, want) in cases {
            let mut d = deploy.clone();
            strategic_merge_patch(&mut d, &patch).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(d, want, "{patch}");
        }
        let mut d = deploy.clone();
        assert!(strategic_merge_patch(&mut d, &json!({"spec": {"$patch": "frob"}})).is_err());
        assert!(strategic_merge_patch(&mut d, &json!([1])).is_err());
    }
}

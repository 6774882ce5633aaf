//! Field ownership (`metadata.managedFields`) and server-side apply: a documented subset of
//! `sigs.k8s.io/structured-merge-diff`.
//!
//! # Field sets
//! A field set is a set of paths, each a list of `fieldsV1` path elements: `f:<field>` for a map
//! key, `k:{"name":"web"}` for an item of an associative list, `v:"x"` for an item of a set
//! list, `i:<n>` (only read, never produced) for a list index. Ownership is tracked at leaf
//! granularity: a scalar, an atomic list or an empty map is one leaf; associative list items and
//! set items are members of their own (the `.` entry of `fieldsV1`), and their fields are
//! leaves below them. A non-empty map is never a member itself (the real server also records
//! `.` for map-typed fields such as `labels` created by an update; this one does not).
//! `apiVersion`, `kind`, `metadata.name`, `.namespace`, `.uid`, `.resourceVersion`,
//! `.generation`, `.creationTimestamp`, `.managedFields`, `.deletionTimestamp` and
//! `.deletionGracePeriodSeconds` are never owned; neither is `status` on the main resource of
//! a type with a status subresource.
//!
//! # List types
//! Without OpenAPI schemas, built-in types use a table by field name (see [`builtin_list_type`]):
//! `containers`, `initContainers`, `ephemeralContainers`, `env`, `volumes`, `imagePullSecrets`,
//! `resourceClaims`, `schedulingGates`, `webhooks` by `name`; `volumeMounts` by `mountPath`;
//! `volumeDevices` by `devicePath`; `hostAliases` by `ip`; `conditions` by `type`;
//! `topologySpreadConstraints` by `topologyKey`+`whenUnsatisfiable`; `ownerReferences` by `uid`;
//! container `ports` by `containerPort`+`protocol` and service `ports` by `port`+`protocol`
//! (a missing `protocol` counts as `TCP`, the default); `finalizers` is a set. Custom resources
//! use their CRD's `x-kubernetes-list-type`/`x-kubernetes-list-map-keys` (implied types have
//! none); `metadata` lists follow the built-in table for every type. Every other list is atomic.
//!
//! # Apply
//! The applied configuration is merged into the live object (maps recursively, associative
//! lists by key with new items appended, set lists as a union, everything else replaced).
//! Fields the manager applied before but no longer applies are removed unless another manager
//! owns them (or something below them). A leaf the configuration sets to a value different
//! from the live one, owned by another manager (of any operation), is a conflict: 409 with one
//! `FieldManagerConflict` cause per field, unless `force=true`, which takes the ownership away
//! from the other managers. Setting the same value shares ownership.
//!
//! # Updates
//! Create, update and the other patch types record an `Update` entry for their manager
//! (`fieldManager`, else the user agent's first word): the leaves they changed become theirs
//! and are taken from others; leaves that no longer exist are dropped from every manager;
//! managers left with nothing are dropped.
//!
//! Differences: no defaulting before merging (so a default the server would add is not
//! "owned"), no conversion of field sets between versions, entries of one manager and
//! operation are merged across `apiVersion`s, and entries keep their order with new ones
//! appended.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use crate::types::{ListType, ResourceType};

/// A path of `fieldsV1` elements.
pub type FieldPath = Vec<String>;
/// A set of paths.
pub type FieldSet = BTreeSet<FieldPath>;

/// What the walker needs from a type's schema.
#[derive(Debug, Clone, Copy)]
pub struct Schema<'a> {
    builtin: bool,
    list_types: Option<&'a BTreeMap<String, ListType>>,
}

impl<'a> Schema<'a> {
    /// The schema knowledge for a type.
    pub fn of(t: &'a ResourceType) -> Self {
        Schema { builtin: t.is_builtin(), list_types: Some(&t.list_types) }
    }

    /// Built-in rules only (for tests and unknown types).
    pub fn builtin() -> Self {
        Schema { builtin: true, list_types: None }
    }

    fn list_type(&self, schema_path: &str, field: &str, items: &[Value]) -> ListType {
        let lt = if self.builtin || schema_path.starts_with("metadata.") {
            builtin_list_type(field, items)
        } else {
            let star = match schema_path.rsplit_once('.') {
                Some((parent, _)) => format!("{parent}.*"),
                None => "*".to_string(),
            };
            self.list_types
                .and_then(|m| m.get(schema_path).or_else(|| m.get(&star)))
                .cloned()
                .unwrap_or(ListType::Atomic)
        };
        match lt {
            ListType::Map(_) if !items.iter().all(Value::is_object) => ListType::Atomic,
            ListType::Set if !items.iter().all(|i| !i.is_object() && !i.is_array()) => ListType::Atomic,
            other => other,
        }
    }
}

/// The list type of a built-in field, by name.
pub fn builtin_list_type(field: &str, items: &[Value]) -> ListType {
    let keys: &[&str] = match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims"
        | "schedulingGates"
        | "webhooks" => &["name"],
        "volumeMounts" => &["mountPath"],
        "volumeDevices" => &["devicePath"],
        "hostAliases" => &["ip"],
        "conditions" => &["type"],
        "topologySpreadConstraints" => &["topologyKey", "whenUnsatisfiable"],
        "ownerReferences" => &["uid"],
        "ports" => {
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                &["containerPort", "protocol"]
            } else {
                &["port", "protocol"]
            }
        }
        "finalizers" => return ListType::Set,
        _ => return ListType::Atomic,
    };
    ListType::Map(keys.iter().map(|k| (*k).to_string()).collect())
}

/// The `k:` element of an associative list item.
fn key_element(item: &Value, keys: &[String]) -> String {
    let mut m = BTreeMap::new();
    for k in keys {
        match item.get(k) {
            Some(v) => {
                m.insert(k.clone(), v.clone());
            }
            None if k == "protocol" => {
                m.insert(k.clone(), json!("TCP"));
            }
            None => {}
        }
    }
    let obj: Map<String, Value> = m.into_iter().collect();
    format!("k:{}", Value::Object(obj))
}

fn item_matches_key(item: &Value, key_json: &str) -> bool {
    let Ok(Value::Object(want)) = serde_json::from_str::<Value>(key_json) else { return false };
    want.iter().all(|(k, v)| match item.get(k) {
        Some(x) => x == v,
        None => k == "protocol" && v == "TCP",
    })
}

const NEVER_OWNED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The object without what is never owned.
fn strip_unowned(obj: &Value, drop_status: bool) -> Value {
    let mut o = obj.clone();
    if let Value::Object(m) = &mut o {
        m.remove("apiVersion");
        m.remove("kind");
        if drop_status {
            m.remove("status");
        }
        if let Some(Value::Object(meta)) = m.get_mut("metadata") {
            for k in NEVER_OWNED_META {
                meta.remove(*k);
            }
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
    }
    o
}

/// The leaf set of an object.
pub fn field_set(obj: &Value, schema: Schema<'_>, drop_status: bool) -> FieldSet {
    let mut out = FieldSet::new();
    if let Value::Object(m) = strip_unowned(obj, drop_status) {
        walk_map(&m, &mut Vec::new(), "", schema, &mut out);
    }
    out
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn walk_map(m: &Map<String, Value>, path: &mut FieldPath, spath: &str, schema: Schema<'_>, out: &mut FieldSet) {
    for (k, v) in m {
        path.push(format!("f:{k}"));
        let sp = join(spath, k);
        match v {
            Value::Object(child) if !child.is_empty() => walk_map(child, path, &sp, schema, out),
            Value::Array(items) => match schema.list_type(&sp, k, items) {
                ListType::Map(keys) => {
                    for item in items {
                        path.push(key_element(item, &keys));
                        out.insert(path.clone());
                        if let Value::Object(im) = item {
                            walk_map(im, path, &format!("{sp}[]"), schema, out);
                        }
                        path.pop();
                    }
                    if items.is_empty() {
                        out.insert(path.clone());
                    }
                }
                ListType::Set => {
                    for item in items {
                        path.push(format!("v:{item}"));
                        out.insert(path.clone());
                        path.pop();
                    }
                    if items.is_empty() {
                        out.insert(path.clone());
                    }
                }
                ListType::Atomic => {
                    out.insert(path.clone());
                }
            },
            _ => {
                out.insert(path.clone());
            }
        }
        path.pop();
    }
}

/// The value at a path, if it exists.
pub fn get_at<'v>(obj: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut cur = obj;
    for el in path {
        cur = if let Some(f) = el.strip_prefix("f:") {
            cur.get(f)?
        } else if let Some(k) = el.strip_prefix("k:") {
            cur.as_array()?.iter().find(|i| item_matches_key(i, k))?
        } else if let Some(v) = el.strip_prefix("v:") {
            let want: Value = serde_json::from_str(v).ok()?;
            cur.as_array()?.iter().find(|i| **i == want)?
        } else if let Some(i) = el.strip_prefix("i:") {
            cur.as_array()?.get(i.parse::<usize>().ok()?)?
        } else {
            return None;
        };
    }
    Some(cur)
}

/// Removes the value at a path (a map key or a list item); false when it was not there.
pub fn remove_at(obj: &mut Value, path: &[String]) -> bool {
    let Some((last, parents)) = path.split_last() else { return false };
    let mut cur = obj;
    for el in parents {
        let next = if let Some(f) = el.strip_prefix("f:") {
            cur.get_mut(f)
        } else if let Some(k) = el.strip_prefix("k:") {
            cur.as_array_mut().and_then(|a| a.iter_mut().find(|i| item_matches_key(i, k)))
        } else if let Some(v) = el.strip_prefix("v:") {
            let want: Option<Value> = serde_json::from_str(v).ok();
            cur.as_array_mut().and_then(|a| a.iter_mut().find(|i| Some(&**i) == want.as_ref()))
        } else if let Some(i) = el.strip_prefix("i:") {
            i.parse::<usize>().ok().and_then(|i| cur.as_array_mut().and_then(|a| a.get_mut(i)))
        } else {
            None
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        return cur.as_object_mut().is_some_and(|m| m.remove(f).is_some());
    }
    let Some(arr) = cur.as_array_mut() else { return false };
    let before = arr.len();
    if let Some(k) = last.strip_prefix("k:") {
        arr.retain(|i| !item_matches_key(i, k));
    } else if let Some(v) = last.strip_prefix("v:") {
        if let Ok(want) = serde_json::from_str::<Value>(v) {
            arr.retain(|i| *i != want);
        }
    } else if let Some(i) = last.strip_prefix("i:").and_then(|i| i.parse::<usize>().ok()) {
        if i < arr.len() {
            arr.remove(i);
        }
    }
    arr.len() != before
}

/// `fieldsV1` JSON → field set.
pub fn from_fields_v1(v: &Value) -> FieldSet {
    fn walk(v: &Value, path: &mut FieldPath, out: &mut FieldSet) {
        let Value::Object(m) = v else { return };
        for (k, child) in m {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            match child {
                Value::Object(cm) if cm.is_empty() => {
                    out.insert(path.clone());
                }
                _ => walk(child, path, out),
            }
            path.pop();
        }
    }
    let mut out = FieldSet::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// Field set → `fieldsV1` JSON (`.` marks a member that also has members below it).
pub fn to_fields_v1(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Node {
        member: bool,
        children: BTreeMap<String, Node>,
    }
    let mut root = Node::default();
    for path in set {
        let mut n = &mut root;
        for el in path {
            n = n.children.entry(el.clone()).or_default();
        }
        n.member = true;
    }
    fn render(n: &Node) -> Value {
        let mut m = Map::new();
        if n.member && !n.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &n.children {
            m.insert(k.clone(), render(c));
        }
        Value::Object(m)
    }
    render(&root)
}

/// A path as conflict messages print it: `.spec.containers[name="web"].image`.
pub fn display_path(path: &[String]) -> String {
    let mut s = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let parts: Vec<String> = match serde_json::from_str::<Value>(k) {
                Ok(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                _ => vec![k.to_string()],
            };
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = el.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The manager's name.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The `apiVersion` the fields were written through.
    pub api_version: String,
    /// When.
    pub time: String,
    /// `status` for writes through the status subresource.
    pub subresource: Option<String>,
    /// The owned fields.
    pub fields: FieldSet,
}

impl Entry {
    fn same_owner(&self, manager: &str, operation: &str, subresource: Option<&str>) -> bool {
        self.manager == manager && self.operation == operation && self.subresource.as_deref() == subresource
    }
}

/// Reads `metadata.managedFields`; unreadable entries are dropped.
pub fn read_entries(obj: &Value) -> Vec<Entry> {
    let Some(list) = obj.pointer("/metadata/managedFields").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .filter_map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
            Some(Entry {
                manager: s("manager").unwrap_or_default(),
                operation: s("operation")?,
                api_version: s("apiVersion").unwrap_or_default(),
                time: s("time").unwrap_or_default(),
                subresource: s("subresource"),
                fields: e.get("fieldsV1").map(from_fields_v1).unwrap_or_default(),
            })
        })
        .collect()
}

/// Writes `metadata.managedFields` (removed when there are no entries).
pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .map(|e| {
            let mut v = json!({ "manager": e.manager, "operation": e.operation, "apiVersion": e.api_version, "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(&e.fields) });
            if let Some(s) = &e.subresource {
                v["subresource"] = json!(s);
            }
            v
        })
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Who writes, for the managed-fields bookkeeping.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    /// The manager name.
    pub manager: &'a str,
    /// The `apiVersion` written through.
    pub api_version: &'a str,
    /// `Some("status")` for the status subresource.
    pub subresource: Option<&'a str>,
    /// The time to record.
    pub time: &'a str,
}

fn is_member_path(p: &FieldPath) -> bool {
    p.last().is_some_and(|e| e.starts_with("k:") || e.starts_with("v:"))
}

fn prune(entries: &mut Vec<Entry>, obj: &Value) {
    for e in entries.iter_mut() {
        e.fields.retain(|p| get_at(obj, p).is_some());
    }
    entries.retain(|e| !e.fields.is_empty());
}

/// Records an `Update` by `writer` that turned `old` (None for a create) into `new`: sets
/// `new`'s `metadata.managedFields`.
pub fn record_update(old: Option<&Value>, new: &mut Value, schema: Schema<'_>, writer: &Writer<'_>, drop_status: bool) {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let empty = Value::Object(Map::new());
    let old_obj = old.unwrap_or(&empty);
    let new_set = field_set(new, schema, drop_status);
    let changed: FieldSet = new_set
        .iter()
        .filter(|p| match get_at(old_obj, p) {
            None => true,
            Some(ov) => !is_member_path(p) && Some(ov) != get_at(new, p),
        })
        .cloned()
        .collect();
    for e in entries.iter_mut() {
        if !e.same_owner(writer.manager, "Update", writer.subresource) {
            e.fields.retain(|p| !changed.contains(p) || is_member_path(p));
        }
    }
    if !changed.is_empty() {
        match entries.iter_mut().find(|e| e.same_owner(writer.manager, "Update", writer.subresource)) {
            Some(e) => {
                e.fields.extend(changed);
                e.time = writer.time.to_string();
                e.api_version = writer.api_version.to_string();
            }
            None => entries.push(Entry {
                manager: writer.manager.to_string(),
                operation: "Update".into(),
                api_version: writer.api_version.to_string(),
                time: writer.time.to_string(),
                subresource: writer.subresource.map(str::to_string),
                fields: changed,
            }),
        }
    }
    prune(&mut entries, new);
    write_entries(new, &entries);
}

/// A field owned by another manager that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager.
    pub manager: String,
    /// The `apiVersion` of its entry.
    pub api_version: String,
    /// The field.
    pub path: FieldPath,
}

/// Removes `null`s from an applied configuration (kubectl sends `creationTimestamp: null`).
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn merge_applied(live: &Value, config: &Value, spath: &str, field: &str, schema: Schema<'_>) -> Value {
    match (live, config) {
        (Value::Object(lm), Value::Object(cm)) => {
            let mut out = lm.clone();
            for (k, cv) in cm {
                let merged = match lm.get(k) {
                    Some(lv) => merge_applied(lv, cv, &join(spath, k), k, schema),
                    None => cv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Value::Array(la), Value::Array(ca)) => {
            let all: Vec<Value> = la.iter().chain(ca.iter()).cloned().collect();
            match schema.list_type(spath, field, &all) {
                ListType::Map(keys) => {
                    let mut out = la.clone();
                    for item in ca {
                        let kel = key_element(item, &keys);
                        let kjson = &kel[2..];
                        match out.iter().position(|i| item_matches_key(i, kjson)) {
                            Some(pos) => {
                                let merged = merge_applied(&out[pos], item, &format!("{spath}[]"), field, schema);
                                out[pos] = merged;
                            }
                            None => out.push(item.clone()),
                        }
                    }
                    Value::Array(out)
                }
                ListType::Set => {
                    let mut out = la.clone();
                    for item in ca {
                        if !out.contains(item) {
                            out.push(item.clone());
                        }
                    }
                    Value::Array(out)
                }
                ListType::Atomic => config.clone(),
            }
        }
        _ => config.clone(),
    }
}

/// Server-side apply of `config` by `writer` onto `live` (None: the object does not exist).
/// Returns the new object, with its managed fields, or the conflicts.
///
/// # Errors
/// The conflicts, when `force` is false and there are any.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    schema: Schema<'_>,
    writer: &Writer<'_>,
    force: bool,
    drop_status: bool,
) -> Result<Value, Vec<Conflict>> {
    let mut config = config.clone();
    strip_nulls(&mut config);
    if let Some(meta) = config.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if drop_status {
        if let Value::Object(m) = &mut config {
            m.remove("status");
        }
    }
    let empty = Value::Object(Map::new());
    let live_obj = live.unwrap_or(&empty);
    let mut entries = read_entries(live_obj);
    let applied = field_set(&config, schema, drop_status);
    let me = |e: &Entry| e.same_owner(writer.manager, "Apply", writer.subresource);

    // Conflicts: leaves this apply changes that another manager owns.
    let mut conflicts = Vec::new();
    for p in applied.iter().filter(|p| !is_member_path(p)) {
        let Some(lv) = get_at(live_obj, p) else { continue };
        if Some(lv) == get_at(&config, p) {
            continue;
        }
        for e in entries.iter().filter(|e| e.manager != writer.manager && e.fields.contains(p)) {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                api_version: e.api_version.clone(),
                path: p.clone(),
            });
        }
    }
    if !conflicts.is_empty() {
        if !force {
            return Err(conflicts);
        }
        for c in &conflicts {
            for e in entries.iter_mut().filter(|e| e.manager == c.manager) {
                e.fields.remove(&c.path);
            }
        }
    }

    let mut merged = merge_applied(live_obj, &config, "", "", schema);

    // Fields this manager applied before and no longer applies, that nobody else owns, go.
    let previous: FieldSet = entries.iter().filter(|e| me(e)).flat_map(|e| e.fields.iter().cloned()).collect();
    let mut gone: Vec<&FieldPath> = previous.difference(&applied).collect();
    gone.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in gone {
        let owned_elsewhere = entries.iter().filter(|e| !me(e)).any(|e| e.fields.iter().any(|q| q.starts_with(p)));
        if !owned_elsewhere {
            remove_at(&mut merged, p);
        }
    }

    match entries.iter_mut().find(|e| me(e)) {
        Some(e) => {
            e.fields = applied;
            e.time = writer.time.to_string();
            e.api_version = writer.api_version.to_string();
        }
        None => entries.push(Entry {
            manager: writer.manager.to_string(),
            operation: "Apply".into(),
            api_version: writer.api_version.to_string(),
            time: writer.time.to_string(),
            subresource: writer.subresource.map(str::to_string),
            fields: applied,
        }),
    }
    prune(&mut entries, &merged);
    write_entries(&mut merged, &entries);
    Ok(merged)
}

/// The 409 message and causes kube-apiserver returns for apply conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> (String, Vec<Value>) {
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({ "type": "FieldManagerConflict", "message": format!("conflict with \"{}\" using {}", c.manager, c.api_version), "field": display_path(&c.path) }))
        .collect();
    let mut by_manager: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for c in conflicts {
        by_manager.entry((c.manager.clone(), c.api_version.clone())).or_default().push(display_path(&c.path));
    }
    let n = conflicts.len();
    let msg = if n == 1 {
        let c = &conflicts[0];
        format!(
            "Apply failed with 1 conflict: conflict with \"{}\" using {}: {}",
            c.manager,
            c.api_version,
            display_path(&c.path)
        )
    } else {
        let mut s = format!("Apply failed with {n} conflicts: ");
        let parts: Vec<String> = by_manager
            .iter()
            .map(|((m, v), fields)| {
                format!(
                    "conflicts with \"{m}\" using {v}:\n{}",
                    fields.iter().map(|f| format!("- {f}")).collect::<Vec<_>>().join("\n")
                )
            })
            .collect();
        s.push_str(&parts.join("\n"));
        s
    };
    (msg, causes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(paths: &[&[&str]]) -> FieldSet {
        paths.iter().map(|p| p.iter().map(|s| (*s).to_string()).collect()).collect()
    }

    fn writer<'a>(manager: &'a str) -> Writer<'a> {
        Writer { manager, api_version: "apps/v1", subresource: None, time: "2026-01-01T00:00:00Z" }
    }

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "web", "image": image, "ports": [{"containerPort": 80}]}]}}}})
    }

    #[test]
    fn leaf_sets_and_fields_v1_round_trip() {
        let s = field_set(&deploy(1, "nginx"), Schema::builtin(), true);
        let c = r#"k:{"name":"web"}"#;
        let p = r#"k:{"containerPort":80,"protocol":"TCP"}"#;
        assert_eq!(
            s,
            set(&[
                &["f:metadata", "f:labels", "f:app"],
                &["f:spec", "f:replicas"],
                &["f:spec", "f:template", "f:spec", "f:containers", c],
                &["f:spec", "f:template", "f:spec", "f:containers", c, "f:image"],
                &["f:spec", "f:template", "f:spec", "f:containers", c, "f:name"],
                &["f:spec", "f:template", "f:spec", "f:containers", c, "f:ports", p],
                &["f:spec", "f:template", "f:spec", "f:containers", c, "f:ports", p, "f:containerPort"],
            ])
        );
        let v1 = to_fields_v1(&s);
        assert_eq!(
            v1["f:spec"]["f:template"]["f:spec"]["f:containers"][c],
            json!({".": {}, "f:image": {}, "f:name": {}, "f:ports": {p: {".": {}, "f:containerPort": {}}}})
        );
        assert_eq!(from_fields_v1(&v1), s);
        let image: FieldPath =
            ["f:spec", "f:template", "f:spec", "f:containers", c, "f:image"].iter().map(|x| (*x).to_string()).collect();
        assert_eq!(display_path(&image), ".spec.template.spec.containers[name=\"web\"].image");
    }

    #[test]
    fn apply_conflicts_force_and_removal() {
        let schema = Schema::builtin();
        // A creates with replicas 1.
        let a = apply(None, &deploy(1, "nginx"), schema, &writer("a"), false, true).unwrap_or_else(|c| panic!("{c:?}"));
        // B applies the same values: shared, no conflict.
        let b =
            apply(Some(&a), &deploy(1, "nginx"), schema, &writer("b"), false, true).unwrap_or_else(|c| panic!("{c:?}"));
        assert_eq!(read_entries(&b).len(), 2);
        // B changes replicas and image: conflicts with A on both.
        let err = apply(Some(&b), &deploy(3, "nginx:2"), schema, &writer("b"), false, true).err().unwrap_or_default();
        let fields: Vec<String> = err.iter().map(|c| display_path(&c.path)).collect();
        assert_eq!(fields, [".spec.replicas", ".spec.template.spec.containers[name=\"web\"].image"]);
        let (msg, causes) = conflict_message(&err);
        assert!(msg.starts_with("Apply failed with 2 conflicts: conflicts with \"a\" using apps/v1:"), "{msg}");
        assert_eq!(causes.len(), 2);
        // Forced: B owns them now, A does not.
        let forced = apply(Some(&b), &deploy(3, "nginx:2"), schema, &writer("b"), true, true)
            .unwrap_or_else(|c| panic!("{c:?}"));
        assert_eq!(forced["spec"]["replicas"], 3);
        let entries = read_entries(&forced);
        let a_entry = entries.iter().find(|e| e.manager == "a").cloned().unwrap_or_else(|| panic!("a lost everything"));
        assert!(!a_entry.fields.contains(&vec!["f:spec".to_string(), "f:replicas".to_string()]));
        // A stops applying the label: it is removed only once B stops too.
        let mut no_label = deploy(1, "nginx");
        no_label["metadata"].as_object_mut().map(|m| m.remove("labels"));
        no_label["spec"].as_object_mut().map(|m| m.remove("replicas"));
        let a2 = apply(Some(&forced), &no_label, schema, &writer("a"), true, true).unwrap_or_else(|c| panic!("{c:?}"));
        assert_eq!(a2["metadata"]["labels"]["app"], "web");
        let mut b_no_label = deploy(3, "nginx:2");
        b_no_label["metadata"].as_object_mut().map(|m| m.remove("labels"));
        let b2 = apply(Some(&a2), &b_no_label, schema, &writer("b"), true, true).unwrap_or_else(|c| panic!("{c:?}"));
        assert_eq!(b2["metadata"]["labels"], json!({}));
        assert_eq!(b2["spec"]["replicas"], 3);
    }

    #[test]
    fn updates_take_ownership() {
        let schema = Schema::builtin();
        let mut created = deploy(1, "nginx");
        record_update(None, &mut created, schema, &writer("kubectl-create"), true);
        let mut edited = created.clone();
        edited["spec"]["replicas"] = json!(5);
        record_update(Some(&created), &mut edited, schema, &writer("kubectl-edit"), true);
        let entries = read_entries(&edited);
        assert_eq!(entries.iter().map(|e| e.manager.as_str()).collect::<Vec<_>>(), ["kubectl-create", "kubectl-edit"]);
        assert_eq!(entries[1].fields, set(&[&["f:spec", "f:replicas"]]));
        // An apply of another replica count now conflicts with kubectl-edit.
        let err = apply(Some(&edited), &deploy(2, "nginx"), schema, &writer("kubectl"), false, true)
            .err()
            .unwrap_or_default();
        assert_eq!(err.iter().map(|c| c.manager.as_str()).collect::<Vec<_>>(), ["kubectl-edit"]);
    }

    #[test]
    fn sets_and_removal_by_path() {
        let mut obj = json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"ports": [{"port": 80, "protocol": "UDP"}, {"port": 80}]}});
        let s = field_set(&obj, Schema::builtin(), false);
        assert!(s.contains(&vec!["f:metadata".to_string(), "f:finalizers".to_string(), "v:\"a\"".to_string()]));
        let tcp = vec!["f:spec".to_string(), "f:ports".to_string(), r#"k:{"port":80,"protocol":"TCP"}"#.to_string()];
        assert_eq!(get_at(&obj, &tcp), Some(&json!({"port": 80})));
        assert!(remove_at(&mut obj, &tcp));
        assert!(remove_at(&mut obj, &["f:metadata".to_string(), "f:finalizers".to_string(), "v:\"a\"".to_string()]));
        assert!(!remove_at(&mut obj, &["f:nope".to_string(), "f:x".to_string()]));
        assert_eq!(
            obj,
            json!({"metadata": {"finalizers": ["b"]}, "spec": {"ports": [{"port": 80, "protocol": "UDP"}]}})
        );
    }
}

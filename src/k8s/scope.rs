//! What a scoped snapshot keeps: one application and what belongs to it, and Secrets with
//! their values removed. Pure functions over objects as the API serves them.
//!
//! # An application
//! `--app deployment/web -n shop` keeps, within the namespace:
//! 1. the object itself;
//! 2. everything it owns, transitively, through `metadata.ownerReferences` (matched by uid):
//!    its ReplicaSets, their Pods, a Job's Pods, EndpointSlices of an owned Service...;
//! 3. with `--with-references`, what its pod templates and its owned Pods refer to: ConfigMaps
//!    and Secrets (volumes, projected volumes, `envFrom`, `env[].valueFrom`, image pull
//!    Secrets), the ServiceAccount named by `serviceAccountName`, PersistentVolumeClaims
//!    (volumes, and those a StatefulSet's `volumeClaimTemplates` create, named
//!    `<template>-<statefulset>-<ordinal>`); the Services and PodDisruptionBudgets whose
//!    selector selects its pods; the HorizontalPodAutoscalers that scale it; and, for those
//!    referenced objects, what they own in turn (a Service's EndpointSlices).

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

fn group_of(v: &Value) -> &str {
    let av = v.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    match av.split_once('/') {
        Some((g, _)) => g,
        None => "",
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

fn kind_of(v: &Value) -> &str {
    str_at(v, "/kind")
}

fn name_of(v: &Value) -> &str {
    str_at(v, "/metadata/name")
}

/// The pod specs an object carries: a Pod's own, a workload's template, a CronJob's job
/// template.
fn pod_specs(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    if kind_of(v) == "Pod" && group_of(v).is_empty() {
        if let Some(s) = v.get("spec") {
            out.push(s);
        }
    }
    for p in ["/spec/template/spec", "/spec/jobTemplate/spec/template/spec"] {
        if let Some(s) = v.pointer(p) {
            if s.is_object() {
                out.push(s);
            }
        }
    }
    out
}

/// The labels of the pods an object runs (its template's, or a Pod's own).
fn pod_labels(v: &Value) -> Vec<&serde_json::Map<String, Value>> {
    let mut out = Vec::new();
    if kind_of(v) == "Pod" && group_of(v).is_empty() {
        if let Some(l) = v.pointer("/metadata/labels").and_then(Value::as_object) {
            out.push(l);
        }
    }
    for p in ["/spec/template/metadata/labels", "/spec/jobTemplate/spec/template/metadata/labels"] {
        if let Some(l) = v.pointer(p).and_then(Value::as_object) {
            out.push(l);
        }
    }
    out
}

/// A reference by kind and name (core group, same namespace).
type NamedRef = (&'static str, String);

/// The ConfigMaps, Secrets, PersistentVolumeClaims and ServiceAccount a pod spec names.
fn pod_spec_refs(spec: &Value, out: &mut Vec<NamedRef>) {
    let mut add = |kind: &'static str, name: &str| {
        if !name.is_empty() {
            out.push((kind, name.to_string()));
        }
    };
    for key in ["serviceAccountName", "serviceAccount"] {
        add("ServiceAccount", str_at(spec, &format!("/{key}")));
    }
    for s in spec.get("imagePullSecrets").and_then(Value::as_array).into_iter().flatten() {
        add("Secret", str_at(s, "/name"));
    }
    for vol in spec.get("volumes").and_then(Value::as_array).into_iter().flatten() {
        add("ConfigMap", str_at(vol, "/configMap/name"));
        add("Secret", str_at(vol, "/secret/secretName"));
        add("PersistentVolumeClaim", str_at(vol, "/persistentVolumeClaim/claimName"));
        for src in vol.pointer("/projected/sources").and_then(Value::as_array).into_iter().flatten() {
            add("ConfigMap", str_at(src, "/configMap/name"));
            add("Secret", str_at(src, "/secret/name"));
        }
    }
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for c in spec.get(list).and_then(Value::as_array).into_iter().flatten() {
            for e in c.get("envFrom").and_then(Value::as_array).into_iter().flatten() {
                add("ConfigMap", str_at(e, "/configMapRef/name"));
                add("Secret", str_at(e, "/secretRef/name"));
            }
            for e in c.get("env").and_then(Value::as_array).into_iter().flatten() {
                add("ConfigMap", str_at(e, "/valueFrom/configMapKeyRef/name"));
                add("Secret", str_at(e, "/valueFrom/secretKeyRef/name"));
            }
        }
    }
}

/// Whether a `LabelSelector` (`matchLabels`, `matchExpressions`) selects `labels`. An empty or
/// absent selector selects nothing here: a Service or budget without a selector does not
/// belong to one application.
fn selects(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    let ml = selector.get("matchLabels").and_then(Value::as_object);
    let me = selector.get("matchExpressions").and_then(Value::as_array);
    if ml.is_none_or(|m| m.is_empty()) && me.is_none_or(|m| m.is_empty()) {
        return false;
    }
    let map_ok = ml.is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let expr_ok = me.is_none_or(|exprs| {
        exprs.iter().all(|e| {
            let key = str_at(e, "/key");
            let values: Vec<&str> =
                e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
            let have = labels.get(key).and_then(Value::as_str);
            match str_at(e, "/operator") {
                "In" => have.is_some_and(|h| values.contains(&h)),
                "NotIn" => have.is_none_or(|h| !values.contains(&h)),
                "Exists" => have.is_some(),
                "DoesNotExist" => have.is_none(),
                _ => false,
            }
        })
    });
    map_ok && expr_ok
}

/// A Service's map selector as a `LabelSelector`.
fn service_selector(v: &Value) -> Value {
    serde_json::json!({ "matchLabels": v.pointer("/spec/selector").cloned().unwrap_or(Value::Null) })
}

/// The objects of one namespace that belong to the application rooted at the object of
/// `group`, `kind` and `name` (see the module documentation). Indices into `objects`,
/// ascending; `None` when the root is not among them.
pub fn select_app(objects: &[Value], group: &str, kind: &str, name: &str, with_references: bool) -> Option<Vec<usize>> {
    let root = objects.iter().position(|o| group_of(o) == group && kind_of(o) == kind && name_of(o) == name)?;
    // Owner uid -> the objects it owns.
    let mut owned_by: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, o) in objects.iter().enumerate() {
        for r in o.pointer("/metadata/ownerReferences").and_then(Value::as_array).into_iter().flatten() {
            owned_by.entry(str_at(r, "/uid")).or_default().push(i);
        }
    }
    let close = |start: Vec<usize>, selected: &mut HashSet<usize>| {
        let mut stack = start;
        while let Some(i) = stack.pop() {
            if !selected.insert(i) {
                continue;
            }
            let uid = str_at(&objects[i], "/metadata/uid");
            if uid.is_empty() {
                continue;
            }
            stack.extend(owned_by.get(uid).into_iter().flatten().copied());
        }
    };
    let mut selected = HashSet::new();
    close(vec![root], &mut selected);
    if with_references {
        let app: Vec<usize> = selected.iter().copied().collect();
        let mut refs = Vec::new();
        let mut labels = Vec::new();
        for &i in &app {
            for spec in pod_specs(&objects[i]) {
                pod_spec_refs(spec, &mut refs);
            }
            labels.extend(pod_labels(&objects[i]));
        }
        let root_obj = &objects[root];
        let sts_claims: Vec<String> = if kind_of(root_obj) == "StatefulSet" {
            root_obj
                .pointer("/spec/volumeClaimTemplates")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|t| format!("{}-{}-", name_of(t), name))
                .collect()
        } else {
            Vec::new()
        };
        let refs: HashSet<(&str, &str)> = refs.iter().map(|(k, n)| (*k, n.as_str())).collect();
        let mut extra = Vec::new();
        for (i, o) in objects.iter().enumerate() {
            if selected.contains(&i) {
                continue;
            }
            let (g, k, n) = (group_of(o), kind_of(o), name_of(o));
            let wanted = match (g, k) {
                ("", "ConfigMap" | "Secret" | "ServiceAccount") => refs.contains(&(k, n)),
                ("", "PersistentVolumeClaim") => {
                    refs.contains(&(k, n))
                        || sts_claims.iter().any(|p| {
                            n.strip_prefix(p.as_str())
                                .is_some_and(|ord| !ord.is_empty() && ord.bytes().all(|b| b.is_ascii_digit()))
                        })
                }
                ("", "Service") => {
                    let sel = service_selector(o);
                    labels.iter().any(|l| selects(&sel, l))
                }
                ("policy", "PodDisruptionBudget") => {
                    o.pointer("/spec/selector").is_some_and(|sel| labels.iter().any(|l| selects(sel, l)))
                }
                ("autoscaling", "HorizontalPodAutoscaler") => {
                    let av = str_at(o, "/spec/scaleTargetRef/apiVersion");
                    let target_group = av.split_once('/').map_or("", |(g, _)| g);
                    str_at(o, "/spec/scaleTargetRef/kind") == kind
                        && str_at(o, "/spec/scaleTargetRef/name") == name
                        && target_group == group
                }
                _ => false,
            };
            if wanted {
                extra.push(i);
            }
        }
        close(extra, &mut selected);
    }
    let mut out: Vec<usize> = selected.into_iter().collect();
    out.sort_unstable();
    Some(out)
}

/// The value a redacted Secret value becomes.
pub const REDACTED: &str = "";

/// Removes a Secret's values, keeping its keys: `data` and `stringData` values become empty,
/// and the `kubectl.kubernetes.io/last-applied-configuration` annotation (which repeats them)
/// gets the same treatment, or is dropped when it cannot be read. Other kinds are left as they
/// are. Returns whether the object is a Secret.
pub fn redact_secret(obj: &mut Value) -> bool {
    if !(kind_of(obj) == "Secret" && group_of(obj).is_empty()) {
        return false;
    }
    fn blank(v: &mut Value) {
        for field in ["data", "stringData"] {
            if let Some(m) = v.get_mut(field).and_then(Value::as_object_mut) {
                for val in m.values_mut() {
                    *val = Value::String(REDACTED.into());
                }
            }
        }
    }
    blank(obj);
    const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
    if let Some(ann) = obj.pointer_mut("/metadata/annotations").and_then(Value::as_object_mut) {
        if let Some(text) = ann.get(LAST_APPLIED).and_then(Value::as_str) {
            match serde_json::from_str::<Value>(text) {
                Ok(mut inner) if inner.is_object() => {
                    blank(&mut inner);
                    ann.insert(LAST_APPLIED.into(), Value::String(inner.to_string()));
                }
                _ => {
                    ann.remove(LAST_APPLIED);
                }
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(api: &str, kind: &str, name: &str, uid: &str, owners: &[&str]) -> Value {
        let refs: Vec<Value> = owners.iter().map(|u| json!({"uid": u, "controller": true})).collect();
        json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "shop", "uid": uid, "ownerReferences": refs}})
    }

    fn web_namespace() -> Vec<Value> {
        let mut deploy = obj("apps/v1", "Deployment", "web", "d1", &[]);
        deploy["spec"] = json!({"selector": {"matchLabels": {"app": "web"}}, "template": {
            "metadata": {"labels": {"app": "web", "tier": "front"}},
            "spec": {"serviceAccountName": "web-sa", "imagePullSecrets": [{"name": "regcred"}],
                     "volumes": [{"name": "c", "configMap": {"name": "web-config"}},
                                 {"name": "p", "persistentVolumeClaim": {"claimName": "web-data"}},
                                 {"name": "x", "projected": {"sources": [{"secret": {"name": "web-tls"}}]}}],
                     "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "web-env"}}],
                                     "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "web-extra", "key": "a"}}}]}]}}});
        let mut svc = obj("v1", "Service", "web", "s1", &[]);
        svc["spec"] = json!({"selector": {"app": "web"}});
        let mut other_svc = obj("v1", "Service", "api", "s2", &[]);
        other_svc["spec"] = json!({"selector": {"app": "api"}});
        let mut no_sel_svc = obj("v1", "Service", "external", "s3", &[]);
        no_sel_svc["spec"] = json!({"type": "ExternalName"});
        let mut pdb = obj("policy/v1", "PodDisruptionBudget", "web", "b1", &[]);
        pdb["spec"] =
            json!({"selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}});
        let mut hpa = obj("autoscaling/v2", "HorizontalPodAutoscaler", "web", "h1", &[]);
        hpa["spec"] = json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}});
        vec![
            deploy,                                                              // 0
            obj("apps/v1", "ReplicaSet", "web-1", "r1", &["d1"]),                // 1
            obj("v1", "Pod", "web-1-a", "p1", &["r1"]),                          // 2
            obj("apps/v1", "ReplicaSet", "api-1", "r2", &["d2"]),                // 3
            svc,                                                                 // 4
            obj("discovery.k8s.io/v1", "EndpointSlice", "web-x", "e1", &["s1"]), // 5
            other_svc,                                                           // 6
            obj("v1", "ConfigMap", "web-config", "c1", &[]),                     // 7
            obj("v1", "ConfigMap", "unrelated", "c2", &[]),                      // 8
            obj("v1", "Secret", "regcred", "x1", &[]),                           // 9
            obj("v1", "Secret", "web-tls", "x2", &[]),                           // 10
            obj("v1", "Secret", "web-env", "x3", &[]),                           // 11
            obj("v1", "ConfigMap", "web-extra", "c3", &[]),                      // 12
            obj("v1", "ServiceAccount", "web-sa", "a1", &[]),                    // 13
            obj("v1", "PersistentVolumeClaim", "web-data", "v1", &[]),           // 14
            no_sel_svc,                                                          // 15
            pdb,                                                                 // 16
            hpa,                                                                 // 17
            obj("v1", "ServiceAccount", "default", "a2", &[]),                   // 18
        ]
    }

    #[test]
    fn an_application_is_its_owned_tree_and_with_references_what_it_uses() {
        let objs = web_namespace();
        for (root, with_refs, want) in [
            (("apps", "Deployment", "web"), false, vec![0, 1, 2]),
            (("apps", "Deployment", "web"), true, vec![0, 1, 2, 4, 5, 7, 9, 10, 11, 12, 13, 14, 16, 17]),
            (("apps", "ReplicaSet", "web-1"), false, vec![1, 2]),
            (("", "Service", "web"), false, vec![4, 5]),
            (("", "ConfigMap", "unrelated"), true, vec![8]),
        ] {
            let got = select_app(&objs, root.0, root.1, root.2, with_refs).unwrap();
            assert_eq!(got, want, "{root:?} with_references={with_refs}");
        }
        assert_eq!(select_app(&objs, "apps", "Deployment", "missing", true), None);
    }

    #[test]
    fn statefulset_claims_follow_the_template_naming() {
        let mut sts = obj("apps/v1", "StatefulSet", "db", "t1", &[]);
        sts["spec"] = json!({"volumeClaimTemplates": [{"metadata": {"name": "data"}}]});
        let objs = vec![
            sts,
            obj("v1", "PersistentVolumeClaim", "data-db-0", "v0", &[]),
            obj("v1", "PersistentVolumeClaim", "data-db-12", "v1", &[]),
            obj("v1", "PersistentVolumeClaim", "data-db-x", "v2", &[]),
            obj("v1", "PersistentVolumeClaim", "data-dbx-0", "v3", &[]),
        ];
        assert_eq!(select_app(&objs, "apps", "StatefulSet", "db", true).unwrap(), vec![0, 1, 2]);
        assert_eq!(select_app(&objs, "apps", "StatefulSet", "db", false).unwrap(), vec![0]);
    }

    #[test]
    fn label_selectors() {
        let labels: serde_json::Map<String, Value> =
            serde_json::from_value(json!({"app": "web", "tier": "front"})).unwrap();
        for (sel, want) in [
            (json!({"matchLabels": {"app": "web"}}), true),
            (json!({"matchLabels": {"app": "api"}}), false),
            (json!({"matchLabels": {}}), false),
            (json!({}), false),
            (json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["back"]}]}), true),
            (json!({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}), false),
            (json!({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}), true),
            (
                json!({"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}]}),
                false,
            ),
        ] {
            assert_eq!(selects(&sel, &labels), want, "{sel}");
        }
    }

    #[test]
    fn secrets_keep_their_keys_not_their_values() {
        let last = json!({"apiVersion": "v1", "kind": "Secret", "data": {"password": "aHVudGVyMg=="}}).to_string();
        let mut s = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last, "keep": "me"}},
            "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="}, "stringData": {"token": "t0k3n"}, "type": "Opaque"});
        assert!(redact_secret(&mut s));
        assert_eq!(s["data"], json!({"password": "", "user": ""}));
        assert_eq!(s["stringData"], json!({"token": ""}));
        assert_eq!(s["type"], "Opaque");
        assert_eq!(s["metadata"]["annotations"]["keep"], "me");
        let text = s.to_string();
        assert!(!text.contains("aHVudGVyMg") && !text.contains("t0k3n") && !text.contains("YWRtaW4"), "{text}");
        let mut bad = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{not json"}}});
        redact_secret(&mut bad);
        assert_eq!(bad["metadata"]["annotations"], json!({}));
        let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}});
        assert!(!redact_secret(&mut cm));
        assert_eq!(cm["data"]["a"], "b");
    }
}

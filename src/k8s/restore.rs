//! What an object needs before it is applied to a cluster again, in what order objects go, and
//! how two objects are compared "as restorable state". Pure functions over JSON, table-tested.
//!
//! # The clean-up
//! A stored object is its desired state: what a user or a tool wrote, with the server-owned
//! fields (`status`, `uid`, `resourceVersion`, `managedFields`...) kept apart. Some desired
//! fields still cannot, or should not, be applied as they were. Restore removes them, as
//! Velero's restore item actions and `kubectl` do:
//!
//! | object | field | why |
//! |---|---|---|
//! | every object | `metadata.uid`, `.resourceVersion`, `.generation`, `.creationTimestamp`, `.managedFields`, `.selfLink`, `.deletionTimestamp`, `.deletionGracePeriodSeconds`, `status` | the server's own |
//! | every object | annotation `kubectl.kubernetes.io/last-applied-configuration` | `kubectl apply`'s memory of another manager; applying it would make kubectl's next three-way merge wrong |
//! | every object | map members whose value is `null` | the API server stores them as absent (a dump's `data:` with nothing after it reads as null) |
//! | every object | `metadata.ownerReferences[].uid` | uids are per object life: re-pointed to the restored or live owner, dropped when the owner is nowhere (a reference to a missing uid makes the garbage collector delete the object) |
//! | Deployment | annotation `deployment.kubernetes.io/revision` | the controller's counter |
//! | Service | `spec.clusterIP`, `spec.clusterIPs` (unless `None`, a headless Service) | allocated by the cluster; the old address may be taken or out of range |
//! | Service | `spec.ports[].nodePort`, `spec.healthCheckNodePort` | allocated; a node port is kept when the last-applied configuration shows the user chose it |
//! | Pod | `spec.nodeName` | the scheduler's choice; the node may be gone |
//! | Pod | volumes `kube-api-access-*` and their mounts | injected by the ServiceAccount admission plugin, which injects them again |
//! | PersistentVolumeClaim | `spec.volumeName` (unless `--keep-volume-names`), binding annotations `pv.kubernetes.io/*`, `volume.kubernetes.io/selected-node`, `volume.(beta.)kubernetes.io/storage-provisioner` | bindings to volumes of the old cluster |
//! | PersistentVolume | `spec.claimRef.uid`, `.resourceVersion` | so the volume binds to the restored claim |
//! | Job (without `manualSelector`) | `spec.selector`, template labels `controller-uid`, `batch.kubernetes.io/controller-uid`, `job-name`, `batch.kubernetes.io/job-name` | generated from the old Job's uid; the server refuses them on create |
//! | ServiceAccount | `secrets[]` naming legacy `<sa>-token-*` Secrets | those Secrets are generated |
//!
//! # What is not restored by default
//! Objects a controller owns (an `ownerReference` with `controller: true`: Pods of a
//! ReplicaSet, ReplicaSets of a Deployment, EndpointSlices of a Service...) are recreated by
//! their controller from the restored owner; `--include-owned` restores them too. And, always:
//! Nodes, Events, Leases, Bindings, `kube-root-ca.crt` ConfigMaps (published by a controller in
//! each namespace, with the cluster's own CA), service-account token Secrets (generated for
//! the new cluster) and the API server's own APIServices (`kube-aggregator.kubernetes.io/
//! automanaged`).
//!
//! # Order
//! CustomResourceDefinitions first (the caller waits until they are established), then
//! Namespaces, then the other cluster-scoped configuration (PriorityClasses, StorageClasses,
//! RBAC, PersistentVolumes...), then namespaced configuration (ServiceAccounts, ConfigMaps,
//! Secrets, quotas, Roles and bindings, claims, Services), then workloads and custom resources,
//! and last the admission webhooks and API registrations: a webhook whose backend is not yet
//! running would refuse everything restored after it.
//!
//! # Namespace maps
//! `OLD=NEW` moves objects of namespace OLD to NEW, renames the Namespace object itself, and
//! rewrites the fields that name a namespace: binding subjects, webhook and APIService service
//! references, CRD conversion webhooks, PersistentVolume claim references. Names inside free
//! text (a `svc.OLD.svc.cluster.local` in a ConfigMap) are not rewritten.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// The annotation `kubectl apply` keeps.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Options of the clean-up.
#[derive(Clone, Debug, Default)]
pub struct CleanOptions {
    /// Keep `spec.volumeName` of claims (to bind to PersistentVolumes restored or kept).
    pub keep_volume_names: bool,
    /// `OLD -> NEW` namespace renames.
    pub namespace_map: BTreeMap<String, String>,
}

fn group_kind(obj: &Value) -> (&str, &str) {
    let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let group = crate::format::resource::group_of(av);
    (group, obj.get("kind").and_then(Value::as_str).unwrap_or_default())
}

fn object_mut<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    v.get_mut(key).and_then(Value::as_object_mut)
}

fn remove_path(v: &mut Value, path: &[&str]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut cur = v;
    for p in parents {
        cur = cur.get_mut(*p)?;
    }
    let removed = cur.as_object_mut()?.shift_remove(*last);
    removed
}

fn remove_annotation(obj: &mut Value, key: &str) -> bool {
    let Some(meta) = object_mut(obj, "metadata") else { return false };
    let Some(Value::Object(ann)) = meta.get_mut("annotations") else { return false };
    let removed = ann.shift_remove(key).is_some();
    if ann.is_empty() {
        meta.shift_remove("annotations");
    }
    removed
}

fn remove_labels(labels: Option<&mut Value>, keys: &[&str]) {
    if let Some(Value::Object(l)) = labels {
        for k in keys {
            l.shift_remove(*k);
        }
    }
}

/// Why an object is never restored, or `None`.
pub fn never_restored(obj: &Value) -> Option<&'static str> {
    let (group, kind) = group_kind(obj);
    let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
    match (group, kind) {
        ("", "Node") => Some("nodes belong to the cluster's machines"),
        ("" | "events.k8s.io", "Event") => Some("events are records of the past"),
        ("coordination.k8s.io", "Lease") => Some("leases belong to running leader elections"),
        ("", "Binding") | ("", "ComponentStatus") => Some("not a stored object"),
        ("", "ConfigMap") if name == "kube-root-ca.crt" => {
            Some("published in every namespace by the cluster, with its own CA")
        }
        ("", "Secret") if obj.get("type").and_then(Value::as_str) == Some("kubernetes.io/service-account-token") => {
            Some("service-account tokens are generated by the cluster that honours them")
        }
        ("apiregistration.k8s.io", "APIService")
            if obj.pointer("/metadata/labels/kube-aggregator.kubernetes.io~1automanaged").is_some() =>
        {
            Some("managed by the API server itself")
        }
        _ => None,
    }
}

/// Removes what cannot or should not be applied as it was (see the module's table), except
/// owner reference uids, which the caller re-points. Returns one note per change.
pub fn clean(obj: &mut Value, opts: &CleanOptions) -> Vec<String> {
    let mut notes = Vec::new();
    drop_nulls(obj);
    if let Some(o) = obj.as_object_mut() {
        o.shift_remove("status");
    }
    if let Some(meta) = object_mut(obj, "metadata") {
        for k in crate::format::resource::SERVER_OWNED_METADATA
            .iter()
            .chain(&["deletionTimestamp", "deletionGracePeriodSeconds"])
        {
            meta.shift_remove(*k);
        }
    }
    let last_applied: Option<Value> = obj
        .pointer(&format!("/metadata/annotations/{}", LAST_APPLIED.replace('/', "~1")))
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str(s).ok());
    if remove_annotation(obj, LAST_APPLIED) {
        notes.push(format!("annotation {LAST_APPLIED} removed"));
    }
    let (group, kind) = group_kind(obj);
    let (group, kind) = (group.to_string(), kind.to_string());
    match (group.as_str(), kind.as_str()) {
        ("apps", "Deployment") if remove_annotation(obj, "deployment.kubernetes.io/revision") => {
            notes.push("annotation deployment.kubernetes.io/revision removed".into());
        }
        ("", "Service") => clean_service(obj, last_applied.as_ref(), &mut notes),
        ("", "Pod") => {
            if remove_path(obj, &["spec", "nodeName"]).is_some() {
                notes.push("spec.nodeName removed".into());
            }
            if let Some(spec) = obj.get_mut("spec") {
                if drop_service_account_volumes(spec) {
                    notes.push("injected kube-api-access volumes removed".into());
                }
            }
        }
        ("", "PersistentVolumeClaim") => {
            if !opts.keep_volume_names && remove_path(obj, &["spec", "volumeName"]).is_some() {
                notes.push("spec.volumeName removed (--keep-volume-names keeps it)".into());
            }
            for a in [
                "pv.kubernetes.io/bind-completed",
                "pv.kubernetes.io/bound-by-controller",
                "volume.kubernetes.io/selected-node",
                "volume.kubernetes.io/storage-provisioner",
                "volume.beta.kubernetes.io/storage-provisioner",
            ] {
                if remove_annotation(obj, a) {
                    notes.push(format!("annotation {a} removed"));
                }
            }
        }
        ("", "PersistentVolume") => {
            let a = remove_path(obj, &["spec", "claimRef", "uid"]).is_some();
            let b = remove_path(obj, &["spec", "claimRef", "resourceVersion"]).is_some();
            if a || b {
                notes.push("spec.claimRef.uid and .resourceVersion removed".into());
            }
        }
        ("batch", "Job") => {
            let manual = obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
            if !manual && remove_path(obj, &["spec", "selector"]).is_some() {
                notes.push("generated spec.selector removed".into());
                let labels = obj.pointer_mut("/spec/template/metadata/labels");
                remove_labels(
                    labels,
                    &[
                        "controller-uid",
                        "batch.kubernetes.io/controller-uid",
                        "job-name",
                        "batch.kubernetes.io/job-name",
                    ],
                );
                if let Some(Value::Object(m)) = obj.pointer_mut("/spec/template/metadata") {
                    if m.get("labels").and_then(Value::as_object).is_some_and(Map::is_empty) {
                        m.shift_remove("labels");
                    }
                }
            }
        }
        ("", "ServiceAccount") => {
            let prefix =
                format!("{}-token-", obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default());
            if let Some(Value::Array(secrets)) = obj.get_mut("secrets") {
                let before = secrets.len();
                secrets.retain(|s| !s.get("name").and_then(Value::as_str).is_some_and(|n| n.starts_with(&prefix)));
                if secrets.len() != before {
                    notes.push("generated token Secrets removed from secrets".into());
                }
                if secrets.is_empty() {
                    obj.as_object_mut().map(|o| o.shift_remove("secrets"));
                }
            }
        }
        _ => {}
    }
    if !opts.namespace_map.is_empty() {
        notes.extend(map_namespaces(obj, &opts.namespace_map));
    }
    notes
}

/// Removes map members whose value is null, at every depth.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn clean_service(obj: &mut Value, last_applied: Option<&Value>, notes: &mut Vec<String>) {
    let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
    if !headless {
        let a = remove_path(obj, &["spec", "clusterIP"]).is_some();
        let b = remove_path(obj, &["spec", "clusterIPs"]).is_some();
        if a || b {
            notes.push("spec.clusterIP(s) removed (allocated by the cluster)".into());
        }
    }
    if remove_path(obj, &["spec", "healthCheckNodePort"]).is_some() {
        notes.push("spec.healthCheckNodePort removed".into());
    }
    // A node port the user chose (it is in kubectl's last-applied configuration) is kept.
    let chosen: Vec<i64> = last_applied
        .and_then(|l| l.pointer("/spec/ports"))
        .and_then(Value::as_array)
        .map(|ports| ports.iter().filter_map(|p| p.get("nodePort").and_then(Value::as_i64)).collect())
        .unwrap_or_default();
    let mut dropped = 0;
    if let Some(Value::Array(ports)) = obj.pointer_mut("/spec/ports") {
        for p in ports {
            if let Some(m) = p.as_object_mut() {
                if m.get("nodePort").and_then(Value::as_i64).is_some_and(|n| !chosen.contains(&n)) {
                    m.shift_remove("nodePort");
                    dropped += 1;
                }
            }
        }
    }
    if dropped > 0 {
        notes.push(format!("{dropped} allocated spec.ports[].nodePort removed"));
    }
}

/// Drops the `kube-api-access-*` projected volumes and their mounts from a pod spec.
fn drop_service_account_volumes(spec: &mut Value) -> bool {
    let injected = |name: Option<&str>| name.is_some_and(|n| n.starts_with("kube-api-access-"));
    let mut changed = false;
    if let Some(Value::Array(vols)) = spec.get_mut("volumes") {
        let before = vols.len();
        vols.retain(|v| !injected(v.get("name").and_then(Value::as_str)));
        changed |= vols.len() != before;
    }
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs {
                if let Some(Value::Array(mounts)) = c.get_mut("volumeMounts") {
                    mounts.retain(|m| !injected(m.get("name").and_then(Value::as_str)));
                    if mounts.is_empty() {
                        c.as_object_mut().map(|o| o.shift_remove("volumeMounts"));
                    }
                }
            }
        }
    }
    if spec.get("volumes").and_then(Value::as_array).is_some_and(Vec::is_empty) {
        spec.as_object_mut().map(|o| o.shift_remove("volumes"));
    }
    changed
}

/// Rewrites namespaces by `map`; one note per rewritten field.
pub fn map_namespaces(obj: &mut Value, map: &BTreeMap<String, String>) -> Vec<String> {
    let mut notes = Vec::new();
    let mut rewrite = |v: Option<&mut Value>, what: &str| {
        if let Some(v) = v {
            if let Some(new) = v.as_str().and_then(|s| map.get(s)) {
                notes.push(format!("{what}: {} -> {new}", v.as_str().unwrap_or_default()));
                *v = Value::String(new.clone());
            }
        }
    };
    let (group, kind) = group_kind(obj);
    let (group, kind) = (group.to_string(), kind.to_string());
    rewrite(obj.pointer_mut("/metadata/namespace"), "metadata.namespace");
    match (group.as_str(), kind.as_str()) {
        ("", "Namespace") => {
            rewrite(obj.pointer_mut("/metadata/name"), "metadata.name");
            // The label the API server keeps equal to the name.
            rewrite(
                obj.pointer_mut("/metadata/labels/kubernetes.io~1metadata.name"),
                "metadata.labels[\"kubernetes.io/metadata.name\"]",
            );
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            if let Some(Value::Array(subjects)) = obj.get_mut("subjects") {
                for (i, s) in subjects.iter_mut().enumerate() {
                    rewrite(s.get_mut("namespace"), &format!("subjects[{i}].namespace"));
                }
            }
        }
        ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration") => {
            if let Some(Value::Array(hooks)) = obj.get_mut("webhooks") {
                for (i, h) in hooks.iter_mut().enumerate() {
                    rewrite(
                        h.pointer_mut("/clientConfig/service/namespace"),
                        &format!("webhooks[{i}].clientConfig.service.namespace"),
                    );
                }
            }
        }
        ("apiregistration.k8s.io", "APIService") => {
            rewrite(obj.pointer_mut("/spec/service/namespace"), "spec.service.namespace")
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => rewrite(
            obj.pointer_mut("/spec/conversion/webhook/clientConfig/service/namespace"),
            "spec.conversion.webhook.clientConfig.service.namespace",
        ),
        ("", "PersistentVolume") => rewrite(obj.pointer_mut("/spec/claimRef/namespace"), "spec.claimRef.namespace"),
        _ => {}
    }
    notes
}

/// The restore rank of a type (lower first).
pub fn rank(group: &str, kind: &str, namespaced: bool) -> u8 {
    match (group, kind) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 0,
        ("", "Namespace") => 1,
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding"
            | "MutatingAdmissionPolicy"
            | "MutatingAdmissionPolicyBinding",
        )
        | ("apiregistration.k8s.io", "APIService") => 6,
        _ if !namespaced => 2,
        (
            "",
            "ServiceAccount"
            | "ConfigMap"
            | "Secret"
            | "LimitRange"
            | "ResourceQuota"
            | "PersistentVolumeClaim"
            | "Service"
            | "Endpoints",
        )
        | ("rbac.authorization.k8s.io", "Role" | "RoleBinding")
        | ("networking.k8s.io", "NetworkPolicy")
        | ("policy", "PodDisruptionBudget") => 3,
        ("", "Pod") | ("apps", "ReplicaSet" | "ControllerRevision") | ("discovery.k8s.io", "EndpointSlice") => 5,
        _ => 4,
    }
}

/// An object as restorable state, for comparing a snapshot with a live cluster: its desired
/// state after the clean-up, with owner references compared by what they point at (kind and
/// name), not by uid, and without what the API server sets on every object of its kind (a
/// Namespace's `kubernetes.io/metadata.name` label and `kubernetes` finalizer).
pub fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    clean(&mut v, &CleanOptions::default());
    // What the clean-up keeps in restored objects but the cluster may set on its own.
    if group_kind(&v) == ("", "Service") {
        if let Some(Value::Array(ports)) = v.pointer_mut("/spec/ports") {
            for p in ports {
                p.as_object_mut().map(|m| m.shift_remove("nodePort"));
            }
        }
    }
    // What the API server sets on every Namespace.
    if group_kind(&v) == ("", "Namespace") {
        let name = v.pointer("/metadata/name").cloned();
        if let Some(Value::Object(labels)) = v.pointer_mut("/metadata/labels") {
            if labels.get("kubernetes.io/metadata.name") == name.as_ref() {
                labels.shift_remove("kubernetes.io/metadata.name");
            }
            if labels.is_empty() {
                v["metadata"].as_object_mut().map(|m| m.shift_remove("labels"));
            }
        }
        if v.pointer("/spec/finalizers") == Some(&serde_json::json!(["kubernetes"])) {
            remove_path(&mut v, &["spec", "finalizers"]);
            if v.get("spec").and_then(Value::as_object).is_some_and(Map::is_empty) {
                v.as_object_mut().map(|m| m.shift_remove("spec"));
            }
        }
    }
    if let Some(Value::Array(refs)) = v.pointer_mut("/metadata/ownerReferences") {
        for r in refs {
            r.as_object_mut().map(|m| m.shift_remove("uid"));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cleaned(v: Value) -> Value {
        let mut v = v;
        clean(&mut v, &CleanOptions::default());
        v
    }

    #[test]
    fn clean_up_table() {
        let la = r#"{"apiVersion":"v1","kind":"Service","spec":{"ports":[{"port":80,"nodePort":30080}]}}"#;
        let table = [
            (
                json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s","uid":"u","annotations":{LAST_APPLIED: la}},
                       "spec":{"clusterIP":"10.0.0.9","clusterIPs":["10.0.0.9"],"type":"NodePort",
                               "ports":[{"port":80,"nodePort":30080},{"port":81,"nodePort":31000}]},"status":{}}),
                json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s"},
                       "spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30080},{"port":81}]}}),
            ),
            (
                json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"h"},"spec":{"clusterIP":"None","clusterIPs":["None"]}}),
                json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"h"},"spec":{"clusterIP":"None","clusterIPs":["None"]}}),
            ),
            (
                json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"nodeName":"n1",
                       "volumes":[{"name":"kube-api-access-x1"},{"name":"data"}],
                       "containers":[{"name":"c","volumeMounts":[{"name":"kube-api-access-x1","mountPath":"/var/run"}]}]}}),
                json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{
                       "volumes":[{"name":"data"}],"containers":[{"name":"c"}]}}),
            ),
            (
                json!({"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"c",
                       "annotations":{"pv.kubernetes.io/bind-completed":"yes","keep":"me"}},"spec":{"volumeName":"pv-1"}}),
                json!({"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"c","annotations":{"keep":"me"}},"spec":{}}),
            ),
            (
                json!({"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv"},
                       "spec":{"claimRef":{"name":"c","namespace":"n","uid":"u","resourceVersion":"9"}}}),
                json!({"apiVersion":"v1","kind":"PersistentVolume","metadata":{"name":"pv"},"spec":{"claimRef":{"name":"c","namespace":"n"}}}),
            ),
            (
                json!({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"selector":{"matchLabels":{"controller-uid":"u"}},
                       "template":{"metadata":{"labels":{"controller-uid":"u","job-name":"j","app":"x"}}}}}),
                json!({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{
                       "template":{"metadata":{"labels":{"app":"x"}}}}}),
            ),
            (
                json!({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"manualSelector":true,"selector":{"matchLabels":{"a":"b"}}}}),
                json!({"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j"},"spec":{"manualSelector":true,"selector":{"matchLabels":{"a":"b"}}}}),
            ),
            (
                json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","labels":null},"data":null}),
                json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}),
            ),
            (
                json!({"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa"},"secrets":[{"name":"sa-token-abcde"},{"name":"other"}]}),
                json!({"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"sa"},"secrets":[{"name":"other"}]}),
            ),
            (
                json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","generation":4,
                       "annotations":{"deployment.kubernetes.io/revision":"4"}},"spec":{"replicas":2}}),
                json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":2}}),
            ),
        ];
        for (input, want) in table {
            assert_eq!(cleaned(input.clone()), want, "{input}");
        }
    }

    #[test]
    fn never_restored_table() {
        let table = [
            (json!({"apiVersion":"v1","kind":"Node","metadata":{"name":"n"}}), true),
            (json!({"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"e"}}), true),
            (json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"kube-root-ca.crt"}}), true),
            (json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"app"}}), false),
            (
                json!({"apiVersion":"v1","kind":"Secret","type":"kubernetes.io/service-account-token","metadata":{"name":"t"}}),
                true,
            ),
            (json!({"apiVersion":"v1","kind":"Secret","type":"Opaque","metadata":{"name":"t"}}), false),
            (
                json!({"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":"v1.apps",
                       "labels":{"kube-aggregator.kubernetes.io/automanaged":"onstart"}}}),
                true,
            ),
            (
                json!({"apiVersion":"apiregistration.k8s.io/v1","kind":"APIService","metadata":{"name":"v1beta1.metrics.k8s.io"}}),
                false,
            ),
        ];
        for (obj, want) in table {
            assert_eq!(never_restored(&obj).is_some(), want, "{obj}");
        }
    }

    #[test]
    fn namespace_maps_rewrite_references() {
        let map: BTreeMap<String, String> = [("shop".to_string(), "shop-2".to_string())].into();
        let mut rb = json!({"apiVersion":"rbac.authorization.k8s.io/v1","kind":"RoleBinding",
            "metadata":{"name":"b","namespace":"shop"},
            "subjects":[{"kind":"ServiceAccount","name":"web","namespace":"shop"},{"kind":"ServiceAccount","name":"x","namespace":"other"}]});
        assert_eq!(map_namespaces(&mut rb, &map).len(), 2);
        assert_eq!(rb["metadata"]["namespace"], "shop-2");
        assert_eq!(rb["subjects"][0]["namespace"], "shop-2");
        assert_eq!(rb["subjects"][1]["namespace"], "other");
        let mut ns = json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop","labels":{"kubernetes.io/metadata.name":"shop"}}});
        map_namespaces(&mut ns, &map);
        assert_eq!(ns["metadata"]["name"], "shop-2");
        assert_eq!(ns["metadata"]["labels"]["kubernetes.io/metadata.name"], "shop-2");
        let mut hook = json!({"apiVersion":"admissionregistration.k8s.io/v1","kind":"ValidatingWebhookConfiguration",
            "metadata":{"name":"h"},"webhooks":[{"name":"a","clientConfig":{"service":{"name":"s","namespace":"shop"}}}]});
        map_namespaces(&mut hook, &map);
        assert_eq!(hook["webhooks"][0]["clientConfig"]["service"]["namespace"], "shop-2");
        let mut other = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"billing"}});
        assert!(map_namespaces(&mut other, &map).is_empty());
    }

    #[test]
    fn ranks_put_definitions_first_and_webhooks_last() {
        let order = [
            ("apiextensions.k8s.io", "CustomResourceDefinition", false),
            ("", "Namespace", false),
            ("rbac.authorization.k8s.io", "ClusterRole", false),
            ("", "ConfigMap", true),
            ("apps", "Deployment", true),
            ("apps", "ReplicaSet", true),
            ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", false),
        ];
        let ranks: Vec<u8> = order.iter().map(|(g, k, n)| rank(g, k, *n)).collect();
        assert!(ranks.windows(2).all(|w| w[0] < w[1]), "{ranks:?}");
        assert_eq!(rank("example.com", "Widget", true), rank("apps", "Deployment", true));
    }

    #[test]
    fn comparable_ignores_what_the_cluster_allocates() {
        let snap = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"n",
            "ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"o","uid":"old"}]},
            "spec":{"clusterIP":"10.0.0.1","ports":[{"port":80,"nodePort":30001}]}});
        let live = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"n",
            "ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"o","uid":"new"}]},
            "spec":{"clusterIP":"10.9.9.9","ports":[{"port":80,"nodePort":31111}]}});
        assert_eq!(comparable(&snap), comparable(&live));
        let changed = json!({"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"n"},
            "spec":{"clusterIP":"10.9.9.9","ports":[{"port":8080}]}});
        assert_ne!(comparable(&snap), comparable(&changed));
    }
}

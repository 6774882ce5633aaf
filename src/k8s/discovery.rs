//! API discovery documents: which resource types a cluster serves, at which version, and how
//! they are named. Pure parsing; [`super::cluster`] fetches the documents.
//!
//! Two shapes exist, and both are read:
//! - **aggregated** discovery (`apidiscovery.k8s.io/v2`, Kubernetes 1.30+ by default): `/api` and
//!   `/apis` each return an `APIGroupDiscoveryList` holding every group, its versions in
//!   preference order, and each version's resources;
//! - **legacy** discovery: `/api` (`APIVersions`), `/apis` (`APIGroupList` with each group's
//!   preferred version) and one `APIResourceList` per group version.
//!
//! As kubectl's `ServerPreferredResources` does, a type is taken at its group's preferred
//! version, and a resource that only a non-preferred version serves is taken at the first
//! version (in preference order) that serves it. Subresources (`pods/log`) are not types.
//! A group version whose discovery failed (an aggregated API server that is down: a 503 in
//! legacy discovery, `freshness: Stale` in aggregated discovery) is reported, never silently
//! dropped.

use std::collections::HashSet;

use serde_json::Value;

use crate::format::snapshot::TypeInfo;
use crate::k8s::names::ResourceType;

/// One served resource type: how it is named, and what can be done with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiType {
    pub resource: ResourceType,
    pub verbs: Vec<String>,
}

impl ApiType {
    /// Whether the type can be listed (and so captured).
    pub fn listable(&self) -> bool {
        self.verbs.iter().any(|v| v == "list")
    }

    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.resource.group.is_empty() {
            self.resource.version.clone()
        } else {
            format!("{}/{}", self.resource.group, self.resource.version)
        }
    }

    /// The URL path of the type's collection, in a namespace or across all of them.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = if self.resource.group.is_empty() {
            "/api/v1".to_string()
        } else {
            format!("/apis/{}/{}", self.resource.group, self.resource.version)
        };
        match namespace {
            Some(ns) if self.resource.namespaced => format!("{base}/namespaces/{ns}/{}", self.resource.plural),
            _ => format!("{base}/{}", self.resource.plural),
        }
    }

    /// The URL path of one object (its name escaped: RBAC names may hold `:` or `@`, and
    /// some types accept almost any character).
    pub fn object_path(&self, namespace: Option<&str>, name: &str) -> String {
        format!("{}/{}", self.collection_path(namespace), super::cluster::query_escape(name))
    }

    /// `deployments.apps`, or `pods` for the core group: how kubectl names the type.
    pub fn display_name(&self) -> String {
        if self.resource.group.is_empty() {
            self.resource.plural.clone()
        } else {
            format!("{}.{}", self.resource.plural, self.resource.group)
        }
    }

    pub fn type_info(&self) -> TypeInfo {
        self.resource.clone().into_type_info("discovery")
    }
}

/// A group version whose resources could not be discovered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedGroup {
    pub group: String,
    pub version: String,
    pub reason: String,
}

/// What a cluster serves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Sorted by group, then plural.
    pub types: Vec<ApiType>,
    pub failed: Vec<FailedGroup>,
    /// "aggregated" or "legacy".
    pub mode: String,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Adds `t` unless its `(group, plural)` is already known (from a more preferred version).
fn push_preferred(out: &mut Vec<ApiType>, seen: &mut HashSet<(String, String)>, t: ApiType) {
    if seen.insert((t.resource.group.clone(), t.resource.plural.clone())) {
        out.push(t);
    }
}

/// Whether a document is an aggregated discovery list.
pub fn is_aggregated(doc: &Value) -> bool {
    doc.get("kind").and_then(Value::as_str) == Some("APIGroupDiscoveryList")
}

/// Reads aggregated discovery documents (those of `/api` and `/apis`).
pub fn from_aggregated(docs: &[&Value]) -> Result<Discovery, String> {
    let mut d = Discovery { mode: "aggregated".into(), ..Default::default() };
    let mut seen = HashSet::new();
    for doc in docs {
        let items = doc
            .get("items")
            .and_then(Value::as_array)
            .ok_or_else(|| "an aggregated discovery document without items".to_string())?;
        for g in items {
            let group = g.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
            let Some(versions) = g.get("versions").and_then(Value::as_array) else { continue };
            for v in versions {
                let version = str_of(v, "version").to_string();
                if version.is_empty() {
                    continue;
                }
                if str_of(v, "freshness") == "Stale" {
                    d.failed.push(FailedGroup {
                        group: group.clone(),
                        version,
                        reason: "its discovery data is stale: the API server serving it is unavailable".into(),
                    });
                    continue;
                }
                for r in v.get("resources").and_then(Value::as_array).into_iter().flatten() {
                    let plural = str_of(r, "resource");
                    let kind = r.pointer("/responseKind/kind").and_then(Value::as_str).unwrap_or_default();
                    if plural.is_empty() || plural.contains('/') || kind.is_empty() {
                        continue;
                    }
                    let t = ApiType {
                        resource: ResourceType {
                            group: group.clone(),
                            version: version.clone(),
                            kind: kind.to_string(),
                            plural: plural.to_string(),
                            singular: non_empty_or(str_of(r, "singularResource"), &kind.to_lowercase()),
                            short_names: strings(r.get("shortNames")),
                            namespaced: str_of(r, "scope") == "Namespaced",
                            categories: strings(r.get("categories")),
                        },
                        verbs: strings(r.get("verbs")),
                    };
                    push_preferred(&mut d.types, &mut seen, t);
                }
            }
        }
    }
    d.types.sort_by(|a, b| (&a.resource.group, &a.resource.plural).cmp(&(&b.resource.group, &b.resource.plural)));
    Ok(d)
}

fn non_empty_or(s: &str, default: &str) -> String {
    if s.is_empty() {
        default.to_string()
    } else {
        s.to_string()
    }
}

/// The group versions to read in legacy discovery, each group's preferred version first: from
/// `/api` (`APIVersions`) and `/apis` (`APIGroupList`).
pub fn legacy_group_versions(api: &Value, apis: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in strings(api.get("versions")) {
        out.push((String::new(), v));
    }
    for g in apis.get("groups").and_then(Value::as_array).into_iter().flatten() {
        let name = str_of(g, "name").to_string();
        let preferred = g.pointer("/preferredVersion/version").and_then(Value::as_str).unwrap_or_default();
        let mut versions: Vec<String> = g
            .get("versions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|v| str_of(v, "version").to_string())
            .collect();
        versions.retain(|v| !v.is_empty());
        if let Some(i) = versions.iter().position(|v| v == preferred) {
            let p = versions.remove(i);
            versions.insert(0, p);
        }
        out.extend(versions.into_iter().map(|v| (name.clone(), v)));
    }
    out
}

/// One group version's answer in legacy discovery.
pub enum LegacyAnswer {
    /// Its `APIResourceList`.
    Resources(Value),
    /// Why it could not be read.
    Failed(String),
}

/// Reads legacy discovery: the group versions of [`legacy_group_versions`], in that order, each
/// with its answer.
pub fn from_legacy(answers: Vec<((String, String), LegacyAnswer)>) -> Discovery {
    let mut d = Discovery { mode: "legacy".into(), ..Default::default() };
    let mut seen = HashSet::new();
    for ((group, version), answer) in answers {
        let list = match answer {
            LegacyAnswer::Resources(v) => v,
            LegacyAnswer::Failed(reason) => {
                d.failed.push(FailedGroup { group, version, reason });
                continue;
            }
        };
        for r in list.get("resources").and_then(Value::as_array).into_iter().flatten() {
            let plural = str_of(r, "name");
            let kind = str_of(r, "kind");
            if plural.is_empty() || plural.contains('/') || kind.is_empty() {
                continue;
            }
            let t = ApiType {
                resource: ResourceType {
                    group: group.clone(),
                    version: version.clone(),
                    kind: kind.to_string(),
                    plural: plural.to_string(),
                    singular: non_empty_or(str_of(r, "singularName"), &kind.to_lowercase()),
                    short_names: strings(r.get("shortNames")),
                    namespaced: r.get("namespaced").and_then(Value::as_bool).unwrap_or(false),
                    categories: strings(r.get("categories")),
                },
                verbs: strings(r.get("verbs")),
            };
            push_preferred(&mut d.types, &mut seen, t);
        }
    }
    d.types.sort_by(|a, b| (&a.resource.group, &a.resource.plural).cmp(&(&b.resource.group, &b.resource.plural)));
    d
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn res(name: &str, kind: &str, scope: &str, verbs: &[&str]) -> Value {
        json!({"resource": name, "responseKind": {"group": "", "version": "", "kind": kind},
               "scope": scope, "verbs": verbs})
    }

    #[test]
    fn aggregated_takes_the_preferred_version_and_reports_stale_groups() {
        let core = json!({"kind": "APIGroupDiscoveryList", "items": [{"metadata": {"name": ""}, "versions": [
            {"version": "v1", "resources": [res("pods", "Pod", "Namespaced", &["list", "get"]),
                                             res("pods/log", "Pod", "Namespaced", &["get"]),
                                             res("bindings", "Binding", "Namespaced", &["create"])]}]}]});
        let apis = json!({"kind": "APIGroupDiscoveryList", "items": [
            {"metadata": {"name": "autoscaling"}, "versions": [
                {"version": "v2", "resources": [res("horizontalpodautoscalers", "HorizontalPodAutoscaler", "Namespaced", &["list"])]},
                {"version": "v1", "resources": [res("horizontalpodautoscalers", "HorizontalPodAutoscaler", "Namespaced", &["list"]),
                                                 res("olds", "Old", "Cluster", &["list"])]}]},
            {"metadata": {"name": "metrics.k8s.io"}, "versions": [{"version": "v1beta1", "freshness": "Stale"}]}]});
        let d = from_aggregated(&[&core, &apis]).unwrap();
        let got: Vec<(String, String, String, bool, bool)> = d
            .types
            .iter()
            .map(|t| {
                let r = &t.resource;
                (r.group.clone(), r.version.clone(), r.plural.clone(), r.namespaced, t.listable())
            })
            .collect();
        let want = [
            ("", "v1", "bindings", true, false),
            ("", "v1", "pods", true, true),
            ("autoscaling", "v2", "horizontalpodautoscalers", true, true),
            ("autoscaling", "v1", "olds", false, true),
        ];
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!((g.0.as_str(), g.1.as_str(), g.2.as_str(), g.3, g.4), w);
        }
        assert_eq!(d.failed.len(), 1);
        assert_eq!(d.failed[0].group, "metrics.k8s.io");
        assert_eq!(d.types[1].resource.singular, "pod");
    }

    #[test]
    fn legacy_orders_the_preferred_version_first() {
        let api = json!({"kind": "APIVersions", "versions": ["v1"]});
        let apis = json!({"kind": "APIGroupList", "groups": [
            {"name": "batch", "versions": [{"groupVersion": "batch/v1beta1", "version": "v1beta1"},
                                          {"groupVersion": "batch/v1", "version": "v1"}],
             "preferredVersion": {"groupVersion": "batch/v1", "version": "v1"}}]});
        let gv = legacy_group_versions(&api, &apis);
        assert_eq!(
            gv,
            vec![("".into(), "v1".into()), ("batch".into(), "v1".into()), ("batch".into(), "v1beta1".into())]
        );
        let d = from_legacy(vec![
            (
                gv[0].clone(),
                LegacyAnswer::Resources(json!({"resources": [
                {"name": "configmaps", "singularName": "", "namespaced": true, "kind": "ConfigMap", "verbs": ["list"], "shortNames": ["cm"]},
                {"name": "configmaps/status", "namespaced": true, "kind": "ConfigMap", "verbs": ["get"]}]})),
            ),
            (
                gv[1].clone(),
                LegacyAnswer::Resources(json!({"resources": [
                {"name": "jobs", "singularName": "job", "namespaced": true, "kind": "Job", "verbs": ["list"]}]})),
            ),
            (
                gv[2].clone(),
                LegacyAnswer::Resources(json!({"resources": [
                {"name": "jobs", "singularName": "job", "namespaced": true, "kind": "Job", "verbs": ["list"]},
                {"name": "cronjobs", "singularName": "cronjob", "namespaced": true, "kind": "CronJob", "verbs": ["list"]}]})),
            ),
            (("metrics.k8s.io".into(), "v1beta1".into()), LegacyAnswer::Failed("503".into())),
        ]);
        let got: Vec<String> = d.types.iter().map(|t| format!("{}/{}", t.api_version(), t.resource.plural)).collect();
        assert_eq!(got, ["v1/configmaps", "batch/v1beta1/cronjobs", "batch/v1/jobs"]);
        assert_eq!(d.types[0].resource.singular, "configmap");
        assert_eq!(d.types[0].resource.short_names, ["cm"]);
        assert_eq!(d.failed.len(), 1);
    }

    #[test]
    fn collection_paths() {
        let t = ApiType {
            resource: ResourceType {
                group: "apps".into(),
                version: "v1".into(),
                kind: "Deployment".into(),
                plural: "deployments".into(),
                singular: "deployment".into(),
                short_names: vec![],
                namespaced: true,
                categories: vec![],
            },
            verbs: vec!["list".into()],
        };
        assert_eq!(t.collection_path(None), "/apis/apps/v1/deployments");
        assert_eq!(t.collection_path(Some("shop")), "/apis/apps/v1/namespaces/shop/deployments");
        let core = ApiType {
            resource: ResourceType {
                group: String::new(),
                plural: "namespaces".into(),
                namespaced: false,
                ..t.resource.clone()
            },
            ..t
        };
        assert_eq!(core.collection_path(Some("x")), "/api/v1/namespaces");
    }
}

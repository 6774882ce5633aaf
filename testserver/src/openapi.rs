//! A skeleton OpenAPI v3 (`/openapi/v3`, `/openapi/v3/{api/v1|apis/{g}/{v}}`): just enough for
//! kubectl to learn that the server validates fields itself.
//!
//! kubectl validates manifests (`--validate`, on by default for `create`, `apply`, `replace`,
//! `edit`) on the server when the OpenAPI v3 document of the object's group-version lists a
//! `PATCH` operation for its kind with a `fieldValidation` query parameter; otherwise it
//! downloads `/openapi/v2` to validate on the client, and fails without it. These documents
//! list every served resource's `PATCH` operation with that parameter and no schemas.
//!
//! Differences: no schemas (`kubectl explain` finds nothing), and `fieldValidation=Strict` is
//! accepted but not enforced: unknown fields are stored as given. `/openapi/v2` is not served.

use std::hash::{Hash, Hasher};

use serde_json::{json, Map, Value};

use crate::types::Registry;

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// Every (group, version) served, core first.
fn group_versions(reg: &Registry) -> Vec<(String, String)> {
    let mut out = vec![(String::new(), "v1".to_string())];
    for (g, vs) in reg.groups() {
        for v in vs {
            out.push((g.clone(), v));
        }
    }
    out
}

/// The document of one group-version, if it is served.
pub fn group_version_doc(reg: &Registry, group: &str, version: &str, kubernetes_version: &str) -> Option<Value> {
    let types = reg.in_group_version(group, version);
    if types.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    for t in types {
        let scope = if t.namespaced { "namespaces/{namespace}/" } else { "" };
        let path = format!("/{}/{scope}{}/{{name}}", gv_path(group, version), t.plural);
        let param = |name: &str, ty: &str| json!({ "name": name, "in": "query", "schema": { "type": ty, "uniqueItems": true } });
        paths.insert(
            path,
            json!({
                "patch": {
                    "operationId": format!("patch{}", t.kind),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": { "group": group, "version": version, "kind": t.kind },
                    "parameters": [
                        param("dryRun", "string"), param("fieldManager", "string"),
                        param("fieldValidation", "string"), param("force", "boolean"),
                    ],
                    "responses": { "200": { "description": "OK" } },
                }
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": kubernetes_version },
        "paths": paths,
        "components": { "schemas": {} },
    }))
}

fn hash_of(v: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

/// `/openapi/v3`: the index of group-version documents.
pub fn root(reg: &Registry, kubernetes_version: &str) -> Value {
    let mut paths = Map::new();
    for (g, v) in group_versions(reg) {
        if let Some(doc) = group_version_doc(reg, &g, &v, kubernetes_version) {
            let p = gv_path(&g, &v);
            paths.insert(p.clone(), json!({ "serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash_of(&doc)) }));
        }
    }
    json!({ "paths": paths })
}

/// The document for `/openapi/v3/{rest}` (`api/v1`, `apis/apps/v1`).
pub fn by_path(reg: &Registry, rest: &str, kubernetes_version: &str) -> Option<Value> {
    let parts: Vec<&str> = rest.trim_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", v] => group_version_doc(reg, "", v, kubernetes_version),
        ["apis", g, v] => group_version_doc(reg, g, v, kubernetes_version),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_list_patch_with_field_validation() {
        let reg = Registry::builtin();
        let root = root(&reg, "v1.33.1");
        let url = root["paths"]["apis/apps/v1"]["serverRelativeURL"].as_str().unwrap_or_default().to_string();
        assert!(url.starts_with("/openapi/v3/apis/apps/v1?hash="), "{url}");
        let doc = by_path(&reg, "apis/apps/v1", "v1.33.1").unwrap_or_default();
        let op = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(op["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert!(op["parameters"].as_array().is_some_and(|p| p.iter().any(|x| x["name"] == "fieldValidation")));
        assert!(
            by_path(&reg, "api/v1", "v1.33.1").is_some_and(|d| d["paths"].get("/api/v1/namespaces/{name}").is_some())
        );
        assert_eq!(by_path(&reg, "apis/nothing/v1", "v1.33.1"), None);
    }
}

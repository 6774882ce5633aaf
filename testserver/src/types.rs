//! The resource types the server serves, and the discovery documents that describe them.
//!
//! Types come from three places ([`Origin`]): the built-in table (the types a Kubernetes 1.33
//! cluster with its default API groups serves: no alpha or beta-only groups such as
//! `resource.k8s.io`), the `CustomResourceDefinition` objects in the store, and "implied" types
//! invented for fixture objects whose `apiVersion`/`kind` is neither built-in nor defined by a
//! stored CRD (a dump of a cluster often holds custom resources whose CRD was not dumped, or
//! kinds of removed API versions such as `extensions/v1beta1` DaemonSets). An implied type's
//! plural is guessed the way kubectl guesses it (`UnsafeGuessKindToResource`).
//!
//! Discovery is served in both formats: legacy (`/api`, `/api/v1`, `/apis`, `/apis/{g}/{v}`)
//! and aggregated v2 (`APIGroupDiscoveryList`, asked for with the
//! `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList` Accept header).
//!
//! Differences from kube-apiserver: no `storageVersionHash`; only the `status` and `scale`
//! subresources are listed (no `pods/log`, `pods/exec`...); all versions of one resource share
//! one storage, and an object read through another version only gets its `apiVersion`
//! rewritten (no schema conversion).

use std::collections::{BTreeMap, HashMap};

use serde_json::{json, Value};

/// Where a served type comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Kubernetes' own types.
    BuiltIn,
    /// Defined by a stored `CustomResourceDefinition` (the CRD's name is `plural.group`).
    Crd,
    /// Invented for fixture objects of a kind nothing else defines.
    Implied,
}

/// How a list-typed field merges under server-side apply (per the type's schema).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced whole (the default).
    Atomic,
    /// Items merged by these key fields.
    Map(Vec<String>),
    /// Scalars treated as a set.
    Set,
}

/// One served resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group, `""` for core.
    pub group: String,
    /// Served versions, the preferred (storage) version first.
    pub versions: Vec<String>,
    /// `Kind`.
    pub kind: String,
    /// Plural resource name (the URL segment).
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Verbs, as discovery lists them.
    pub verbs: Vec<String>,
    /// Short names (`deploy`).
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Served subresources (`status`, `scale`).
    pub subresources: Vec<String>,
    /// Whether `metadata.generation` is maintained.
    pub generation: bool,
    /// Where the type comes from.
    pub origin: Origin,
    /// For CRDs: list types from `x-kubernetes-list-type`/`x-kubernetes-list-map-keys`, keyed by
    /// the dotted field path with `[]` for list items (`spec.ports`, `spec.a[].b`).
    pub list_types: BTreeMap<String, ListType>,
}

impl ResourceType {
    /// `apiVersion` for a version: `v1` or `apps/v1`.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }

    /// The preferred version.
    pub fn preferred_version(&self) -> &str {
        self.versions.first().map_or("v1", String::as_str)
    }

    /// Whether discovery lists this verb.
    pub fn has_verb(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// Whether the `status` subresource is served (status is then ignored on main-resource writes).
    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }

    /// Whether this is a built-in type (strategic merge patch is accepted only for those).
    pub fn is_builtin(&self) -> bool {
        self.origin == Origin::BuiltIn
    }
}

const FULL: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const NO_COLLECTION: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];
const CREATE_ONLY: &[&str] = &["create"];
const READ_ONLY: &[&str] = &["get", "list"];

struct Row {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
    verbs: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
    generation: bool,
}

#[allow(clippy::too_many_arguments)] // reason: a table row constructor
const fn row(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    short: &'static [&'static str],
    namespaced: bool,
    verbs: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [&'static str],
    generation: bool,
) -> Row {
    Row { group, version, kind, plural, short, namespaced, verbs, categories, subresources, generation }
}

const NS: bool = true;
const CL: bool = false;
const ALL: &[&str] = &["all"];
const API_EXT: &[&str] = &["api-extensions"];
const NONE: &[&str] = &[];
const ST: &[&str] = &["status"];
const ST_SCALE: &[&str] = &["status", "scale"];

/// Kubernetes 1.33's default-enabled types (as `kubectl api-resources` lists them on kind).
const BUILTIN: &[Row] = &[
    row("", "v1", "Binding", "bindings", NONE, NS, CREATE_ONLY, NONE, NONE, false),
    row("", "v1", "ComponentStatus", "componentstatuses", &["cs"], CL, READ_ONLY, NONE, NONE, false),
    row("", "v1", "ConfigMap", "configmaps", &["cm"], NS, FULL, NONE, NONE, false),
    row("", "v1", "Endpoints", "endpoints", &["ep"], NS, FULL, NONE, NONE, false),
    row("", "v1", "Event", "events", &["ev"], NS, FULL, NONE, NONE, false),
    row("", "v1", "LimitRange", "limitranges", &["limits"], NS, FULL, NONE, NONE, false),
    row("", "v1", "Namespace", "namespaces", &["ns"], CL, NO_COLLECTION, NONE, ST, false),
    row("", "v1", "Node", "nodes", &["no"], CL, FULL, NONE, ST, false),
    row("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", &["pvc"], NS, FULL, NONE, ST, false),
    row("", "v1", "PersistentVolume", "persistentvolumes", &["pv"], CL, FULL, NONE, ST, false),
    row("", "v1", "Pod", "pods", &["po"], NS, FULL, ALL, ST, false),
    row("", "v1", "PodTemplate", "podtemplates", NONE, NS, FULL, NONE, NONE, false),
    row("", "v1", "ReplicationController", "replicationcontrollers", &["rc"], NS, FULL, ALL, ST_SCALE, true),
    row("", "v1", "ResourceQuota", "resourcequotas", &["quota"], NS, FULL, NONE, ST, false),
    row("", "v1", "Secret", "secrets", NONE, NS, FULL, NONE, NONE, false),
    row("", "v1", "ServiceAccount", "serviceaccounts", &["sa"], NS, FULL, NONE, NONE, false),
    row("", "v1", "Service", "services", &["svc"], NS, FULL, ALL, ST, false),
    row(
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        NONE,
        CL,
        FULL,
        API_EXT,
        NONE,
        true,
    ),
    row(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicy",
        "validatingadmissionpolicies",
        NONE,
        CL,
        FULL,
        API_EXT,
        ST,
        true,
    ),
    row(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingAdmissionPolicyBinding",
        "validatingadmissionpolicybindings",
        NONE,
        CL,
        FULL,
        API_EXT,
        NONE,
        true,
    ),
    row(
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        NONE,
        CL,
        FULL,
        API_EXT,
        NONE,
        true,
    ),
    row(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        &["crd", "crds"],
        CL,
        FULL,
        API_EXT,
        ST,
        true,
    ),
    row("apiregistration.k8s.io", "v1", "APIService", "apiservices", NONE, CL, FULL, API_EXT, ST, false),
    row("apps", "v1", "ControllerRevision", "controllerrevisions", NONE, NS, FULL, NONE, NONE, false),
    row("apps", "v1", "DaemonSet", "daemonsets", &["ds"], NS, FULL, ALL, ST, true),
    row("apps", "v1", "Deployment", "deployments", &["deploy"], NS, FULL, ALL, ST_SCALE, true),
    row("apps", "v1", "ReplicaSet", "replicasets", &["rs"], NS, FULL, ALL, ST_SCALE, true),
    row("apps", "v1", "StatefulSet", "statefulsets", &["sts"], NS, FULL, ALL, ST_SCALE, true),
    row(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        NONE,
        CL,
        CREATE_ONLY,
        NONE,
        NONE,
        false,
    ),
    row("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", NONE, CL, CREATE_ONLY, NONE, NONE, false),
    row(
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        NONE,
        NS,
        CREATE_ONLY,
        NONE,
        NONE,
        false,
    ),
    row(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        NONE,
        CL,
        CREATE_ONLY,
        NONE,
        NONE,
        false,
    ),
    row(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        NONE,
        CL,
        CREATE_ONLY,
        NONE,
        NONE,
        false,
    ),
    row(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        NONE,
        CL,
        CREATE_ONLY,
        NONE,
        NONE,
        false,
    ),
    row("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", &["hpa"], NS, FULL, ALL, ST, true),
    row("batch", "v1", "CronJob", "cronjobs", &["cj"], NS, FULL, ALL, ST, true),
    row("batch", "v1", "Job", "jobs", NONE, NS, FULL, ALL, ST, true),
    row(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        &["csr"],
        CL,
        FULL,
        NONE,
        ST,
        false,
    ),
    row("coordination.k8s.io", "v1", "Lease", "leases", NONE, NS, FULL, NONE, NONE, false),
    row("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", NONE, NS, FULL, NONE, NONE, true),
    row("events.k8s.io", "v1", "Event", "events", &["ev"], NS, FULL, NONE, NONE, false),
    row("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", NONE, CL, FULL, NONE, ST, true),
    row(
        "flowcontrol.apiserver.k8s.io",
        "v1",
        "PriorityLevelConfiguration",
        "prioritylevelconfigurations",
        NONE,
        CL,
        FULL,
        NONE,
        ST,
        true,
    ),
    row("networking.k8s.io", "v1", "IngressClass", "ingressclasses", NONE, CL, FULL, NONE, NONE, false),
    row("networking.k8s.io", "v1", "Ingress", "ingresses", &["ing"], NS, FULL, NONE, ST, true),
    row("networking.k8s.io", "v1", "IPAddress", "ipaddresses", &["ip"], CL, FULL, NONE, NONE, false),
    row("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", &["netpol"], NS, FULL, NONE, NONE, true),
    row("networking.k8s.io", "v1", "ServiceCIDR", "servicecidrs", NONE, CL, FULL, NONE, ST, false),
    row("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", NONE, CL, FULL, NONE, NONE, false),
    row("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", &["pdb"], NS, FULL, NONE, ST, true),
    row(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        NONE,
        CL,
        FULL,
        NONE,
        NONE,
        false,
    ),
    row("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", NONE, CL, FULL, NONE, NONE, false),
    row("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", NONE, NS, FULL, NONE, NONE, false),
    row("rbac.authorization.k8s.io", "v1", "Role", "roles", NONE, NS, FULL, NONE, NONE, false),
    row("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", &["pc"], CL, FULL, NONE, NONE, false),
    row("storage.k8s.io", "v1", "CSIDriver", "csidrivers", NONE, CL, FULL, NONE, NONE, false),
    row("storage.k8s.io", "v1", "CSINode", "csinodes", NONE, CL, FULL, NONE, NONE, false),
    row("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", NONE, NS, FULL, NONE, NONE, false),
    row("storage.k8s.io", "v1", "StorageClass", "storageclasses", &["sc"], CL, FULL, NONE, NONE, false),
    row("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", NONE, CL, FULL, NONE, ST, false),
];

/// Group order in `/apis`, as kube-apiserver orders its own groups; other groups follow,
/// sorted by name.
const GROUP_ORDER: &[&str] = &[
    "apiregistration.k8s.io",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
    "flowcontrol.apiserver.k8s.io",
];

/// Extra versions kube-apiserver 1.33 serves for a built-in type besides its preferred one.
fn extra_builtin_versions(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("autoscaling", "horizontalpodautoscalers") => &["v1"],
        _ => &[],
    }
}

/// Kubernetes' version priority: GA before beta before alpha, higher numbers first, then
/// anything else alphabetically.
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    fn key(v: &str) -> (u8, i64, i64, String) {
        let parse = || -> Option<(u8, i64, i64)> {
            let rest = v.strip_prefix('v')?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let major: i64 = digits.parse().ok()?;
            let tail = &rest[digits.len()..];
            if tail.is_empty() {
                return Some((0, -major, 0));
            }
            let (stage, num) = if let Some(n) = tail.strip_prefix("beta") {
                (1, n)
            } else if let Some(n) = tail.strip_prefix("alpha") {
                (2, n)
            } else {
                return None;
            };
            let minor: i64 = if num.is_empty() { 0 } else { num.parse().ok()? };
            Some((stage, -major, -minor))
        };
        match parse() {
            Some((s, a, b)) => (s, a, b, String::new()),
            None => (3, 0, 0, v.to_string()),
        }
    }
    key(a).cmp(&key(b))
}

/// kubectl's `UnsafeGuessKindToResource`: `Ingress` → `ingresses`, `Policy` → `policies`.
pub fn guess_plural(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.is_empty() {
        return lower;
    }
    if lower.ends_with('s') {
        return format!("{lower}es");
    }
    if let Some(stem) = lower.strip_suffix('y') {
        if !stem.ends_with(['a', 'e', 'i', 'o', 'u']) {
            return format!("{stem}ies");
        }
    }
    format!("{lower}s")
}

/// Splits an `apiVersion` into (group, version).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The set of served types.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    types: Vec<ResourceType>,
    by_resource: HashMap<(String, String), usize>,
}

impl Registry {
    /// The built-in types of Kubernetes 1.33.
    pub fn builtin() -> Self {
        let mut r = Registry::default();
        for row in BUILTIN {
            let mut versions = vec![row.version.to_string()];
            versions.extend(extra_builtin_versions(row.group, row.plural).iter().map(|v| (*v).to_string()));
            r.insert(ResourceType {
                group: row.group.into(),
                versions,
                kind: row.kind.into(),
                plural: row.plural.into(),
                singular: row.kind.to_lowercase(),
                namespaced: row.namespaced,
                verbs: row.verbs.iter().map(|v| (*v).to_string()).collect(),
                short_names: row.short.iter().map(|v| (*v).to_string()).collect(),
                categories: row.categories.iter().map(|v| (*v).to_string()).collect(),
                subresources: row.subresources.iter().map(|v| (*v).to_string()).collect(),
                generation: row.generation,
                origin: Origin::BuiltIn,
                list_types: BTreeMap::new(),
            });
        }
        r
    }

    /// Adds or replaces the type with the same (group, plural).
    pub fn insert(&mut self, t: ResourceType) {
        let key = (t.group.clone(), t.plural.clone());
        if let Some(&i) = self.by_resource.get(&key) {
            self.types[i] = t;
        } else {
            self.by_resource.insert(key, self.types.len());
            self.types.push(t);
        }
    }

    /// Removes the type (group, plural); returns it.
    pub fn remove(&mut self, group: &str, plural: &str) -> Option<ResourceType> {
        let i = self.by_resource.remove(&(group.to_string(), plural.to_string()))?;
        let t = self.types.remove(i);
        self.reindex();
        Some(t)
    }

    fn reindex(&mut self) {
        self.by_resource =
            self.types.iter().enumerate().map(|(i, t)| ((t.group.clone(), t.plural.clone()), i)).collect();
    }

    /// Every type.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The type (group, plural), any version.
    pub fn get(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        self.by_resource.get(&(group.to_string(), plural.to_string())).map(|&i| &self.types[i])
    }

    /// The type (group, plural) if it is served in `version`.
    pub fn get_served(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.get(group, plural).filter(|t| t.versions.iter().any(|v| v == version))
    }

    /// The type with this group and kind. When several types share them (core and
    /// `events.k8s.io` Events are different groups, so this is rare), the first wins.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<&ResourceType> {
        self.types.iter().find(|t| t.group == group && t.kind == kind)
    }

    /// Groups with their versions, preferred version first, in `/apis` order (core excluded).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in &self.types {
            if t.group.is_empty() {
                continue;
            }
            let versions = groups.entry(t.group.clone()).or_default();
            for v in &t.versions {
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
            }
        }
        let mut out: Vec<(String, Vec<String>)> = groups
            .into_iter()
            .map(|(g, mut vs)| {
                vs.sort_by(|a, b| version_order(a, b));
                (g, vs)
            })
            .collect();
        out.sort_by_key(|(g, _)| {
            let pos = GROUP_ORDER.iter().position(|x| x == g).unwrap_or(GROUP_ORDER.len());
            (pos, g.clone())
        });
        out
    }

    /// Types served in group/version, in name order.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<&ResourceType> {
        let mut v: Vec<&ResourceType> =
            self.types.iter().filter(|t| t.group == group && t.versions.iter().any(|x| x == version)).collect();
        v.sort_by(|a, b| a.plural.cmp(&b.plural));
        v
    }

    /// `/api`: `APIVersions`.
    pub fn api_versions(&self, server_address: &str) -> Value {
        json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": server_address }],
        })
    }

    /// `/apis`: `APIGroupList`.
    pub fn api_group_list(&self) -> Value {
        let groups: Vec<Value> = self.groups().iter().map(|(g, vs)| group_json(g, vs)).collect();
        json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
    }

    /// `/apis/{group}`: `APIGroup`, if the group exists.
    pub fn api_group(&self, group: &str) -> Option<Value> {
        self.groups().iter().find(|(g, _)| g == group).map(|(g, vs)| {
            let mut v = group_json(g, vs);
            v["kind"] = json!("APIGroup");
            v["apiVersion"] = json!("v1");
            v
        })
    }

    /// `/api/v1` or `/apis/{g}/{v}`: `APIResourceList`, if anything is served there.
    pub fn api_resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let types = self.in_group_version(group, version);
        if types.is_empty() {
            return None;
        }
        let mut resources = Vec::new();
        for t in types {
            let mut r = json!({
                "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
                "kind": t.kind, "verbs": t.verbs,
            });
            if !t.short_names.is_empty() {
                r["shortNames"] = json!(t.short_names);
            }
            if !t.categories.is_empty() {
                r["categories"] = json!(t.categories);
            }
            resources.push(r);
            for sub in &t.subresources {
                let (kind, group, version) = subresource_kind(t, sub);
                let mut s = json!({
                    "name": format!("{}/{sub}", t.plural), "singularName": "", "namespaced": t.namespaced,
                    "kind": kind, "verbs": ["get", "patch", "update"],
                });
                if !group.is_empty() {
                    s["group"] = json!(group);
                    s["version"] = json!(version);
                }
                resources.push(s);
            }
        }
        let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
        Some(json!({ "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources }))
    }

    /// Aggregated discovery (v2) for `/api` (`core` true) or `/apis`.
    pub fn aggregated(&self, core: bool) -> Value {
        let groups: Vec<(String, Vec<String>)> =
            if core { vec![(String::new(), vec!["v1".to_string()])] } else { self.groups() };
        let items: Vec<Value> = groups
            .iter()
            .map(|(g, vs)| {
                let versions: Vec<Value> = vs
                    .iter()
                    .map(|v| {
                        let resources: Vec<Value> = self
                            .in_group_version(g, v)
                            .into_iter()
                            .map(|t| {
                                let mut r = json!({
                                    "resource": t.plural,
                                    "responseKind": { "group": "", "version": "", "kind": t.kind },
                                    "scope": if t.namespaced { "Namespaced" } else { "Cluster" },
                                    "singularResource": t.singular,
                                    "verbs": t.verbs,
                                });
                                if !t.short_names.is_empty() {
                                    r["shortNames"] = json!(t.short_names);
                                }
                                if !t.categories.is_empty() {
                                    r["categories"] = json!(t.categories);
                                }
                                if !t.subresources.is_empty() {
                                    let subs: Vec<Value> = t
                                        .subresources
                                        .iter()
                                        .map(|s| {
                                            let (kind, group, version) = subresource_kind(t, s);
                                            json!({
                                                "subresource": s,
                                                "responseKind": { "group": group, "version": version, "kind": kind },
                                                "verbs": ["get", "patch", "update"],
                                            })
                                        })
                                        .collect();
                                    r["subresources"] = json!(subs);
                                }
                                r
                            })
                            .collect();
                        json!({ "version": v, "resources": resources, "freshness": "Current" })
                    })
                    .collect();
                json!({ "metadata": { "name": g, "creationTimestamp": null }, "versions": versions })
            })
            .collect();
        json!({
            "kind": "APIGroupDiscoveryList",
            "apiVersion": "apidiscovery.k8s.io/v2",
            "metadata": {},
            "items": items,
        })
    }
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> =
        versions.iter().map(|v| json!({ "groupVersion": format!("{group}/{v}"), "version": v })).collect();
    let preferred = versions.first().map_or_else(String::new, Clone::clone);
    json!({
        "name": group,
        "versions": vs,
        "preferredVersion": { "groupVersion": format!("{group}/{preferred}"), "version": preferred },
    })
}

/// (kind, group, version) a subresource answers with: `Scale` from `autoscaling/v1`, else the
/// type's own kind.
fn subresource_kind(t: &ResourceType, sub: &str) -> (String, String, String) {
    if sub == "scale" {
        ("Scale".into(), "autoscaling".into(), "v1".into())
    } else {
        (t.kind.clone(), String::new(), String::new())
    }
}

/// The type a `CustomResourceDefinition` object defines (served versions only), or why not.
///
/// # Errors
/// A message naming the missing or malformed field.
pub fn type_from_crd(crd: &Value) -> Result<ResourceType, String> {
    let spec = crd.get("spec").ok_or("spec: Required value")?;
    let group =
        spec.get("group").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or("spec.group: Required value")?;
    let names = spec.get("names").ok_or("spec.names: Required value")?;
    let kind =
        names.get("kind").and_then(Value::as_str).filter(|s| !s.is_empty()).ok_or("spec.names.kind: Required value")?;
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("spec.names.plural: Required value")?;
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => return Err("spec.scope: Unsupported value: must be Namespaced or Cluster".into()),
    };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default()
    };
    let mut versions: Vec<(String, bool)> = Vec::new();
    let mut subresources: Vec<String> = Vec::new();
    let mut list_types = BTreeMap::new();
    if let Some(vs) = spec.get("versions").and_then(Value::as_array) {
        for v in vs {
            let Some(name) = v.get("name").and_then(Value::as_str) else { continue };
            if v.get("served").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let storage = v.get("storage").and_then(Value::as_bool) == Some(true);
            versions.push((name.to_string(), storage));
            if let Some(subs) = v.get("subresources").or_else(|| spec.get("subresources")) {
                for s in ["status", "scale"] {
                    if subs.get(s).is_some() && !subresources.iter().any(|x| x == s) {
                        subresources.push(s.to_string());
                    }
                }
            }
            if storage {
                if let Some(schema) = v.pointer("/schema/openAPIV3Schema") {
                    collect_list_types(schema, "", &mut list_types);
                }
            }
        }
    } else if let Some(v) = spec.get("version").and_then(Value::as_str) {
        // apiextensions.k8s.io/v1beta1 shape.
        versions.push((v.to_string(), true));
    }
    if versions.is_empty() {
        return Err("spec.versions: Invalid value: must have exactly one version marked as storage version".into());
    }
    // The served versions in Kubernetes' priority order (the preferred one first).
    let mut names_only: Vec<String> = versions.iter().map(|(n, _)| n.clone()).collect();
    names_only.sort_by(|a, b| version_order(a, b));
    Ok(ResourceType {
        group: group.into(),
        versions: names_only,
        kind: kind.into(),
        plural: plural.into(),
        singular: names
            .get("singular")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map_or_else(|| kind.to_lowercase(), str::to_string),
        namespaced,
        verbs: FULL.iter().map(|v| (*v).to_string()).collect(),
        short_names: strings(names.get("shortNames")),
        categories: strings(names.get("categories")),
        subresources,
        generation: true,
        origin: Origin::Crd,
        list_types,
    })
}

fn collect_list_types(schema: &Value, path: &str, out: &mut BTreeMap<String, ListType>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let p = if path.is_empty() { name.clone() } else { format!("{path}.{name}") };
            collect_list_types(sub, &p, out);
        }
    }
    if schema.get("type").and_then(Value::as_str) == Some("array") {
        let lt = match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("map") => {
                let keys = schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                ListType::Map(keys)
            }
            Some("set") => ListType::Set,
            _ => ListType::Atomic,
        };
        if lt != ListType::Atomic {
            out.insert(path.to_string(), lt);
        }
        if let Some(items) = schema.get("items") {
            collect_list_types(items, &format!("{path}[]"), out);
        }
    }
    if let Some(extra) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        collect_list_types(extra, &format!("{path}.*"), out);
    }
}

/// An implied type for fixture objects of an unknown (group, kind).
pub fn implied_type(group: &str, version: &str, kind: &str, namespaced: bool) -> ResourceType {
    ResourceType {
        group: group.into(),
        versions: vec![version.into()],
        kind: kind.into(),
        plural: guess_plural(kind),
        singular: kind.to_lowercase(),
        namespaced,
        verbs: FULL.iter().map(|v| (*v).to_string()).collect(),
        short_names: Vec::new(),
        categories: Vec::new(),
        subresources: Vec::new(),
        generation: true,
        origin: Origin::Implied,
        list_types: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plural_guesses() {
        let cases = [
            ("Ingress", "ingresses"),
            ("Policy", "policies"),
            ("Gateway", "gateways"),
            ("Pod", "pods"),
            ("postgresql", "postgresqls"),
            ("Kafka", "kafkas"),
        ];
        for (kind, plural) in cases {
            assert_eq!(guess_plural(kind), plural, "{kind}");
        }
    }

    #[test]
    fn version_priority() {
        let mut v = vec!["v1alpha1", "v1beta1", "v2", "v1", "v2beta2", "v1beta2", "foo", "v10"];
        v.sort_by(|a, b| version_order(a, b));
        assert_eq!(v, ["v10", "v2", "v1", "v2beta2", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn builtin_table() {
        let r = Registry::builtin();
        let all: Vec<&str> = {
            let mut v: Vec<&str> = r
                .types()
                .iter()
                .filter(|t| t.categories.iter().any(|c| c == "all"))
                .map(|t| t.plural.as_str())
                .collect();
            v.sort_unstable();
            v
        };
        assert_eq!(
            all,
            [
                "cronjobs",
                "daemonsets",
                "deployments",
                "horizontalpodautoscalers",
                "jobs",
                "pods",
                "replicasets",
                "replicationcontrollers",
                "services",
                "statefulsets"
            ]
        );
        assert_eq!(
            r.get_served("autoscaling", "v1", "horizontalpodautoscalers").map(|t| t.kind.as_str()),
            Some("HorizontalPodAutoscaler")
        );
        let groups = r.groups();
        assert_eq!(groups[0].0, "apiregistration.k8s.io");
        assert_eq!(
            groups.iter().find(|(g, _)| g == "autoscaling").map(|(_, v)| v.clone()),
            Some(vec!["v2".to_string(), "v1".to_string()])
        );
    }

    #[test]
    fn crd_types() {
        let crd = json!({"spec": {"group": "example.io", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wd"], "categories": ["all"]},
            "versions": [
                {"name": "v1beta1", "served": true, "storage": false},
                {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                 "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "properties": {
                    "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"], "items": {"type": "object"}}}}}}}},
                {"name": "v0", "served": false, "storage": false}]}});
        let t = type_from_crd(&crd).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.versions, ["v1", "v1beta1"]);
        assert_eq!(t.subresources, ["status"]);
        assert_eq!(t.list_types.get("spec.ports"), Some(&ListType::Map(vec!["port".into()])));
        assert!(type_from_crd(&json!({"spec": {}})).is_err());
    }
}

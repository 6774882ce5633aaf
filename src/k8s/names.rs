//! Resolving kubectl-style resource names without a cluster.
//!
//! Users name resources the way kubectl does: `deployment/web`, `deploy/web`,
//! `deployments.apps/web`, `Deployment.apps/web`, `deployments.v1.apps/web`,
//! `crd/certificates.cert-manager.io`, or, for `--kind` filters, a bare type
//! name such as `deploy`, `Deployment` or `deployments.apps`. This module maps
//! such names to a [`ResourceType`] using only data that kubesnap has offline.
//!
//! # Where types come from
//!
//! A [`TypeTable`] holds the known types, each tagged with its
//! [`TypeSource`], in this priority order:
//!
//! 1. [`TypeSource::BuiltIn`]: Kubernetes' own served, listable types, as of
//!    Kubernetes 1.33 ([`TypeTable::builtin`]).
//! 2. [`TypeSource::SnapshotCrd`]: the `CustomResourceDefinition`s stored in the
//!    snapshot being read ([`TypeTable::type_from_crd`]).
//! 3. [`TypeSource::Discovery`]: the API discovery data recorded by a live
//!    snapshot (aggregated APIs, and types of a newer or older cluster).
//!
//! A type is identified by its `(group, kind)`. The same `(group, kind)`
//! registered twice counts once: the entry from the best source is kept and a
//! source of lower (or equal) priority never overrides it; see
//! [`TypeTable::add`].
//!
//! # How a type name is matched
//!
//! Type words are matched case-insensitively, as kubectl does.
//!
//! 1. An optional qualifier is split off at the **first** `.`:
//!    `deployments.apps` is the word `deployments` in group `apps`, and
//!    `certificates.cert-manager.io` is the word `certificates` in group
//!    `cert-manager.io`. If the qualifier starts with a version
//!    (`v\d+((alpha|beta)\d+)?`) followed by a `.`, as in kubectl's
//!    `resource.version.group` form (`deployments.v1.apps`), the version is
//!    dropped and the rest is the group; when that finds nothing, the whole
//!    qualifier is tried as the group, as kubectl does. The version only
//!    selects the syntax: the type returned carries its preferred version.
//! 2. The word matches a type when it equals the type's plural, singular,
//!    kind or one of its short names.
//! 3. With a group qualifier only types of exactly that group match (the
//!    qualifier must be the full group name).
//! 4. Without a qualifier, the matching types are ranked in tiers, as kubectl
//!    ranks API groups: the core group (`""`) first, then the other API
//!    groups built into Kubernetes (`apps`, `batch`, `events.k8s.io`, ...,
//!    whatever the source of the type), then every other group (CRDs,
//!    aggregated APIs). Only the best tier present is kept. So a CRD with the
//!    short name `svc` or the kind `Service` does not shadow the core
//!    Service, and `events`/`ev` mean the core Event rather than the
//!    `events.k8s.io` one; `services.example.com` still picks the CRD.
//! 5. Exactly one remaining type is the answer. Several remaining types of
//!    different `(group, kind)` are [`NameError::Ambiguous`], whatever their
//!    sources: `certificate` with both cert-manager's and Knative's
//!    Certificate CRDs must be written `certificates.cert-manager.io` (or
//!    `certificates.networking.internal.knative.dev`). None is
//!    [`NameError::UnknownType`].
//!
//! A full resource reference `TYPE/NAME` is split at the first `/`
//! ([`TypeTable::resolve`]); the name part is returned as written and must
//! not be empty.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One Kubernetes resource type, as discovery describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceType {
    /// API group; `""` for the core API.
    pub group: String,
    /// Preferred version, e.g. `"v1"`.
    pub version: String,
    /// Kind, e.g. `"Deployment"`.
    pub kind: String,
    /// Plural resource name, e.g. `"deployments"`.
    pub plural: String,
    /// Singular resource name, e.g. `"deployment"`. Discovery data may leave
    /// it empty; [`TypeTable::add`] then fills in the kind lowercased.
    pub singular: String,
    /// Short names, e.g. `["deploy"]`.
    pub short_names: Vec<String>,
    /// Whether objects of this type live in a namespace.
    pub namespaced: bool,
    /// Categories, e.g. `["all"]`.
    pub categories: Vec<String>,
}

impl ResourceType {
    /// The type as a snapshot manifest records it, with where it was learnt (`crd`,
    /// `discovery`).
    #[must_use]
    pub fn into_type_info(self, source: &str) -> crate::format::snapshot::TypeInfo {
        crate::format::snapshot::TypeInfo {
            group: self.group,
            version: self.version,
            kind: self.kind,
            plural: self.plural,
            singular: self.singular,
            short_names: self.short_names,
            namespaced: self.namespaced,
            categories: self.categories,
            source: source.into(),
        }
    }

    /// The type's name as shown to users: `Kind` for the core group,
    /// `Kind.group` otherwise (e.g. `Certificate.cert-manager.io`).
    #[must_use]
    pub fn display_name(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Whether `word` names this type: its plural, singular, kind or one of
    /// its short names, ignoring ASCII case.
    fn matches_word(&self, word: &str) -> bool {
        self.plural.eq_ignore_ascii_case(word)
            || self.singular.eq_ignore_ascii_case(word)
            || self.kind.eq_ignore_ascii_case(word)
            || self.short_names.iter().any(|s| s.eq_ignore_ascii_case(word))
    }
}

/// Where a type came from, in resolution priority order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TypeSource {
    /// Kubernetes' own types ([`TypeTable::builtin`]).
    BuiltIn,
    /// A `CustomResourceDefinition` stored in the snapshot.
    SnapshotCrd,
    /// Discovery data recorded from a live cluster.
    Discovery,
}

/// Why a resource name could not be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The input, or its type part, is empty.
    #[error("empty resource type: expected TYPE or TYPE/NAME, e.g. deployment/web")]
    Empty,
    /// No known type has this name.
    #[error("unknown resource type \"{name}\"")]
    UnknownType {
        /// The type name as given.
        name: String,
    },
    /// Several types of different `(group, kind)` have this name.
    #[error("\"{name}\" is ambiguous: {}; qualify it with its group", .candidates.join(", "))]
    Ambiguous {
        /// The type name as given.
        name: String,
        /// The matching types, sorted, each as `Kind.group` (`Kind` for the
        /// core group).
        candidates: Vec<String>,
    },
    /// A `TYPE/NAME` reference without a name.
    #[error("\"{spec}\" names no object: expected TYPE/NAME, e.g. deployment/web")]
    MissingName {
        /// The reference as given.
        spec: String,
    },
}

/// The known resource types, from built-in data, snapshot CRDs and recorded
/// discovery data. See the module documentation for the resolution rules.
#[derive(Clone, Debug, Default)]
pub struct TypeTable {
    /// Types in insertion order, each with its source.
    entries: Vec<(ResourceType, TypeSource)>,
    /// `(group, kind)` -> index into `entries`.
    index: HashMap<(String, String), usize>,
}

impl TypeTable {
    /// An empty table.
    #[must_use]
    pub fn new() -> TypeTable {
        TypeTable::default()
    }

    /// A table holding Kubernetes 1.33's own served, listable types.
    #[must_use]
    pub fn builtin() -> TypeTable {
        let mut table = TypeTable::new();
        for b in BUILTIN_TYPES {
            table.add(b.to_resource_type(), TypeSource::BuiltIn);
        }
        table
    }

    /// Adds a type. An empty `singular` is replaced by the kind lowercased.
    ///
    /// A type whose `(group, kind)` is already present is ignored unless its
    /// source has a strictly higher priority than the present entry's (for
    /// example a built-in type added after discovery data), in which case it
    /// replaces that entry in place. Sources added in priority order
    /// (built-in, snapshot CRDs, discovery) therefore never override one
    /// another, and for equal sources the first one added wins.
    pub fn add(&mut self, mut t: ResourceType, source: TypeSource) {
        if t.singular.is_empty() {
            t.singular = t.kind.to_lowercase();
        }
        let key = (t.group.clone(), t.kind.clone());
        if let Some(&i) = self.index.get(&key) {
            if let Some(entry) = self.entries.get_mut(i) {
                if source < entry.1 {
                    *entry = (t, source);
                }
            }
        } else {
            self.index.insert(key, self.entries.len());
            self.entries.push((t, source));
        }
    }

    /// A `CustomResourceDefinition` object (as JSON) -> its [`ResourceType`]
    /// (`spec.group`, `spec.names.*`, `spec.scope`, the storage version or
    /// first served version). `None` when it is not a valid CRD.
    ///
    /// Both `apiextensions.k8s.io/v1` and the older `v1beta1` shape (a single
    /// `spec.version`) are accepted. The version is the storage version when
    /// it is served, else the first served version, else the storage
    /// version. `kind`/`apiVersion`, when present, must be those of a CRD;
    /// `spec.group`, `spec.names.kind` and `spec.names.plural` must be
    /// non-empty and `spec.scope` must be `Namespaced` or `Cluster`.
    #[must_use]
    pub fn type_from_crd(crd: &serde_json::Value) -> Option<ResourceType> {
        if let Some(kind) = crd.get("kind") {
            if kind.as_str() != Some("CustomResourceDefinition") {
                return None;
            }
        }
        if let Some(api_version) = crd.get("apiVersion") {
            let group = api_version.as_str()?.split('/').next().unwrap_or("");
            if group != "apiextensions.k8s.io" {
                return None;
            }
        }
        let spec = crd.get("spec")?;
        let group = non_empty_str(spec.get("group"))?;
        let names = spec.get("names")?;
        let kind = non_empty_str(names.get("kind"))?;
        let plural = non_empty_str(names.get("plural"))?;
        if group.contains('/') || plural.contains('/') || plural.contains('.') {
            return None;
        }
        let namespaced = match spec.get("scope")?.as_str()? {
            "Namespaced" => true,
            "Cluster" => false,
            _ => return None,
        };
        let version = crd_version(spec)?;
        let singular = names
            .get("singular")
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .map_or_else(|| kind.to_lowercase(), str::to_string);
        Some(ResourceType {
            group: group.to_string(),
            version,
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular,
            short_names: string_list(names.get("shortNames")),
            namespaced,
            categories: string_list(names.get("categories")),
        })
    }

    /// The type with exactly this group and kind (both compared exactly, as
    /// in an object's `apiVersion`/`kind`).
    #[must_use]
    pub fn lookup_kind(&self, group: &str, kind: &str) -> Option<&ResourceType> {
        let i = *self.index.get(&(group.to_string(), kind.to_string()))?;
        self.entries.get(i).map(|(t, _)| t)
    }

    /// Where the type with this group and kind came from.
    #[must_use]
    pub fn source(&self, group: &str, kind: &str) -> Option<TypeSource> {
        let i = *self.index.get(&(group.to_string(), kind.to_string()))?;
        self.entries.get(i).map(|(_, s)| *s)
    }

    /// Resolve a type name (the part before '/', or a --kind value) to exactly one type.
    ///
    /// Surrounding whitespace is ignored. See the module documentation for
    /// the matching rules.
    ///
    /// # Errors
    ///
    /// [`NameError::Empty`] for an empty name, [`NameError::UnknownType`]
    /// when no type matches (or the name is malformed, like `pods.`), and
    /// [`NameError::Ambiguous`] when several types match.
    pub fn resolve_type(&self, name: &str) -> Result<&ResourceType, NameError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        let unknown = || NameError::UnknownType { name: name.to_string() };
        let (word, groups) = split_type_name(name).ok_or_else(unknown)?;
        if groups.is_empty() {
            // Unqualified word: rank by tier.
            return pick(name, &self.best_tier(word));
        }
        for group in groups {
            let matches: Vec<&ResourceType> = self
                .entries
                .iter()
                .map(|(t, _)| t)
                .filter(|t| t.group.eq_ignore_ascii_case(group) && t.matches_word(word))
                .collect();
            if !matches.is_empty() {
                return pick(name, &matches);
            }
        }
        Err(unknown())
    }

    /// Resolve "type/name" (name may contain any characters but '/' is the
    /// first separator; the name part may itself be empty -> error).
    ///
    /// Returns the type and the name as written after the first `/`.
    /// Surrounding whitespace of the whole reference is ignored.
    ///
    /// # Errors
    ///
    /// [`NameError::MissingName`] when there is no `/` or nothing after it,
    /// [`NameError::Empty`] when the type part is empty, and the errors of
    /// [`TypeTable::resolve_type`] for the type part.
    pub fn resolve(&self, spec: &str) -> Result<(&ResourceType, String), NameError> {
        let trimmed = spec.trim();
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        let missing = || NameError::MissingName { spec: spec.to_string() };
        let (type_name, object_name) = trimmed.split_once('/').ok_or_else(missing)?;
        if type_name.trim().is_empty() {
            return Err(NameError::Empty);
        }
        if object_name.is_empty() {
            return Err(missing());
        }
        let t = self.resolve_type(type_name)?;
        Ok((t, object_name.to_string()))
    }

    /// All types, in the order they were first added.
    pub fn types(&self) -> impl Iterator<Item = &ResourceType> {
        self.entries.iter().map(|(t, _)| t)
    }

    /// The types matching an unqualified word, restricted to the best tier
    /// present (core, then built-in groups, then the rest).
    fn best_tier(&self, word: &str) -> Vec<&ResourceType> {
        let mut best: Vec<&ResourceType> = Vec::new();
        let mut best_tier = u8::MAX;
        for (t, _) in &self.entries {
            if !t.matches_word(word) {
                continue;
            }
            let tier = group_tier(&t.group);
            if tier < best_tier {
                best_tier = tier;
                best.clear();
            }
            if tier == best_tier {
                best.push(t);
            }
        }
        best
    }
}

impl fmt::Display for TypeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TypeSource::BuiltIn => "built-in",
            TypeSource::SnapshotCrd => "snapshot CRD",
            TypeSource::Discovery => "discovery",
        })
    }
}

/// One match -> it; none -> unknown; several -> ambiguous.
fn pick<'a>(name: &str, matches: &[&'a ResourceType]) -> Result<&'a ResourceType, NameError> {
    match matches {
        [] => Err(NameError::UnknownType { name: name.to_string() }),
        [one] => Ok(one),
        several => {
            let mut candidates: Vec<String> = several.iter().map(|t| t.display_name()).collect();
            candidates.sort();
            candidates.dedup();
            Err(NameError::Ambiguous { name: name.to_string(), candidates })
        }
    }
}

/// Splits a type name into its word and the groups to try, in order (none:
/// unqualified). `None` when the name is malformed (an empty word or an
/// empty qualifier).
fn split_type_name(name: &str) -> Option<(&str, Vec<&str>)> {
    let Some((word, qualifier)) = name.split_once('.') else {
        return Some((name, Vec::new()));
    };
    if word.is_empty() || qualifier.is_empty() {
        return None;
    }
    if let Some((version, group)) = qualifier.split_once('.') {
        if is_version(&version.to_ascii_lowercase()) && !group.is_empty() {
            return Some((word, vec![group, qualifier]));
        }
    }
    Some((word, vec![qualifier]))
}

/// Whether `s` is a Kubernetes API version: `v\d+((alpha|beta)\d+)?`.
fn is_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return false;
    }
    let rest = &rest[digits..];
    if rest.is_empty() {
        return true;
    }
    let Some(level) = rest.strip_prefix("alpha").or_else(|| rest.strip_prefix("beta")) else {
        return false;
    };
    !level.is_empty() && level.bytes().all(|b| b.is_ascii_digit())
}

/// The API groups built into Kubernetes' API server (including those of
/// alpha/beta and removed APIs, which discovery data may record).
const BUILTIN_GROUPS: &[&str] = &[
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "extensions",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

/// Resolution tier of a group: 0 core, 1 other built-in groups, 2 the rest.
fn group_tier(group: &str) -> u8 {
    if group.is_empty() {
        0
    } else if BUILTIN_GROUPS.contains(&group) {
        1
    } else {
        2
    }
}

fn non_empty_str(v: Option<&serde_json::Value>) -> Option<&str> {
    v.and_then(serde_json::Value::as_str).filter(|s| !s.is_empty())
}

/// The strings of a JSON array (other items and non-arrays are ignored).
fn string_list(v: Option<&serde_json::Value>) -> Vec<String> {
    v.and_then(serde_json::Value::as_array)
        .map(|items| {
            items.iter().filter_map(serde_json::Value::as_str).filter(|s| !s.is_empty()).map(str::to_string).collect()
        })
        .unwrap_or_default()
}

/// A CRD's version: the storage version if served, else the first served
/// one, else the storage one; `spec.version` for old v1beta1 CRDs.
fn crd_version(spec: &serde_json::Value) -> Option<String> {
    let versions: Vec<(&str, bool, bool)> = spec
        .get("versions")
        .and_then(serde_json::Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|v| {
                    let name = non_empty_str(v.get("name"))?;
                    let flag = |k: &str| v.get(k).and_then(serde_json::Value::as_bool);
                    Some((name, flag("served").unwrap_or(false), flag("storage").unwrap_or(false)))
                })
                .collect()
        })
        .unwrap_or_default();
    let storage_served = versions.iter().find(|(_, served, storage)| *served && *storage);
    let first_served = versions.iter().find(|(_, served, _)| *served);
    let storage = versions.iter().find(|(_, _, storage)| *storage);
    storage_served
        .or(first_served)
        .or(storage)
        .map(|(name, _, _)| (*name).to_string())
        .or_else(|| non_empty_str(spec.get("version")).map(str::to_string))
}

/// One row of the built-in table.
struct Builtin {
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
    categories: &'static [&'static str],
}

impl Builtin {
    fn to_resource_type(&self) -> ResourceType {
        let strings = |xs: &[&str]| xs.iter().map(|s| (*s).to_string()).collect();
        ResourceType {
            group: self.group.to_string(),
            version: self.version.to_string(),
            kind: self.kind.to_string(),
            plural: self.plural.to_string(),
            singular: self.singular.to_string(),
            short_names: strings(self.short_names),
            namespaced: self.namespaced,
            categories: strings(self.categories),
        }
    }
}

const NS: bool = true;
const CLUSTER: bool = false;
const ALL: &[&str] = &["all"];
const API_EXT: &[&str] = &["api-extensions"];
const NONE: &[&str] = &[];

/// Shorthand for a row of [`BUILTIN_TYPES`].
#[allow(clippy::too_many_arguments)]
const fn b(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
    categories: &'static [&'static str],
) -> Builtin {
    Builtin { group, version, kind, plural, singular, short_names, namespaced, categories }
}

/// Kubernetes 1.33's served, listable types with their preferred versions.
/// Review-style types (`TokenReview`, `SubjectAccessReview`, ...) and bindings
/// are not listable and are left out; so are alpha/beta types that 1.33 does
/// not serve by default, except the `resource.k8s.io` (DRA) group, whose
/// preferred version in 1.33 is `v1beta2`.
#[rustfmt::skip]
const BUILTIN_TYPES: &[Builtin] = &[
    // core/v1
    b("", "v1", "ComponentStatus", "componentstatuses", "componentstatus", &["cs"], CLUSTER, NONE),
    b("", "v1", "ConfigMap", "configmaps", "configmap", &["cm"], NS, NONE),
    b("", "v1", "Endpoints", "endpoints", "endpoints", &["ep"], NS, NONE),
    b("", "v1", "Event", "events", "event", &["ev"], NS, NONE),
    b("", "v1", "LimitRange", "limitranges", "limitrange", &["limits"], NS, NONE),
    b("", "v1", "Namespace", "namespaces", "namespace", &["ns"], CLUSTER, NONE),
    b("", "v1", "Node", "nodes", "node", &["no"], CLUSTER, NONE),
    b("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", "persistentvolumeclaim", &["pvc"], NS, NONE),
    b("", "v1", "PersistentVolume", "persistentvolumes", "persistentvolume", &["pv"], CLUSTER, NONE),
    b("", "v1", "Pod", "pods", "pod", &["po"], NS, ALL),
    b("", "v1", "PodTemplate", "podtemplates", "podtemplate", &[], NS, NONE),
    b("", "v1", "ReplicationController", "replicationcontrollers", "replicationcontroller", &["rc"], NS, ALL),
    b("", "v1", "ResourceQuota", "resourcequotas", "resourcequota", &["quota"], NS, NONE),
    b("", "v1", "Secret", "secrets", "secret", &[], NS, NONE),
    b("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", &["sa"], NS, NONE),
    b("", "v1", "Service", "services", "service", &["svc"], NS, ALL),
    // admissionregistration.k8s.io/v1
    b("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", &[], CLUSTER, API_EXT),
    b("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations", "validatingwebhookconfiguration", &[], CLUSTER, API_EXT),
    b("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", "validatingadmissionpolicy", &[], CLUSTER, API_EXT),
    b("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings", "validatingadmissionpolicybinding", &[], CLUSTER, API_EXT),
    // apiextensions.k8s.io/v1
    b("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", "customresourcedefinition", &["crd", "crds"], CLUSTER, API_EXT),
    // apiregistration.k8s.io/v1
    b("apiregistration.k8s.io", "v1", "APIService", "apiservices", "apiservice", &[], CLUSTER, API_EXT),
    // apps/v1
    b("apps", "v1", "ControllerRevision", "controllerrevisions", "controllerrevision", &[], NS, NONE),
    b("apps", "v1", "DaemonSet", "daemonsets", "daemonset", &["ds"], NS, ALL),
    b("apps", "v1", "Deployment", "deployments", "deployment", &["deploy"], NS, ALL),
    b("apps", "v1", "ReplicaSet", "replicasets", "replicaset", &["rs"], NS, ALL),
    b("apps", "v1", "StatefulSet", "statefulsets", "statefulset", &["sts"], NS, ALL),
    // autoscaling/v2
    b("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", "horizontalpodautoscaler", &["hpa"], NS, ALL),
    // batch/v1
    b("batch", "v1", "CronJob", "cronjobs", "cronjob", &["cj"], NS, ALL),
    b("batch", "v1", "Job", "jobs", "job", &[], NS, ALL),
    // certificates.k8s.io/v1
    b("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", "certificatesigningrequest", &["csr"], CLUSTER, NONE),
    // coordination.k8s.io/v1
    b("coordination.k8s.io", "v1", "Lease", "leases", "lease", &[], NS, NONE),
    // discovery.k8s.io/v1
    b("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", "endpointslice", &[], NS, NONE),
    // events.k8s.io/v1 (the words "events"/"ev" resolve to the core Event)
    b("events.k8s.io", "v1", "Event", "events", "event", &["ev"], NS, NONE),
    // flowcontrol.apiserver.k8s.io/v1
    b("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", "flowschema", &[], CLUSTER, NONE),
    b("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations", "prioritylevelconfiguration", &[], CLUSTER, NONE),
    // networking.k8s.io/v1
    b("networking.k8s.io", "v1", "IngressClass", "ingressclasses", "ingressclass", &[], CLUSTER, NONE),
    b("networking.k8s.io", "v1", "Ingress", "ingresses", "ingress", &["ing"], NS, NONE),
    b("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", &["netpol"], NS, NONE),
    b("networking.k8s.io", "v1", "IPAddress", "ipaddresses", "ipaddress", &["ip"], CLUSTER, NONE),
    b("networking.k8s.io", "v1", "ServiceCIDR", "servicecidrs", "servicecidr", &[], CLUSTER, NONE),
    // node.k8s.io/v1
    b("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", "runtimeclass", &[], CLUSTER, NONE),
    // policy/v1
    b("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", &["pdb"], NS, NONE),
    // rbac.authorization.k8s.io/v1
    b("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", "clusterrolebinding", &[], CLUSTER, NONE),
    b("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", &[], CLUSTER, NONE),
    b("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", &[], NS, NONE),
    b("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", &[], NS, NONE),
    // resource.k8s.io/v1beta2 (DRA; beta in 1.33, served when enabled)
    b("resource.k8s.io", "v1beta2", "DeviceClass", "deviceclasses", "deviceclass", &[], CLUSTER, NONE),
    b("resource.k8s.io", "v1beta2", "ResourceClaim", "resourceclaims", "resourceclaim", &[], NS, NONE),
    b("resource.k8s.io", "v1beta2", "ResourceClaimTemplate", "resourceclaimtemplates", "resourceclaimtemplate", &[], NS, NONE),
    b("resource.k8s.io", "v1beta2", "ResourceSlice", "resourceslices", "resourceslice", &[], CLUSTER, NONE),
    // scheduling.k8s.io/v1
    b("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", "priorityclass", &["pc"], CLUSTER, NONE),
    // storage.k8s.io/v1
    b("storage.k8s.io", "v1", "CSIDriver", "csidrivers", "csidriver", &[], CLUSTER, NONE),
    b("storage.k8s.io", "v1", "CSINode", "csinodes", "csinode", &[], CLUSTER, NONE),
    b("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", "csistoragecapacity", &[], NS, NONE),
    b("storage.k8s.io", "v1", "StorageClass", "storageclasses", "storageclass", &["sc"], CLUSTER, NONE),
    b("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", "volumeattachment", &[], CLUSTER, NONE),
];

// Test tables keep one case per line.
#[cfg(test)]
#[rustfmt::skip]
mod tests {
    use super::*;
    use serde_json::json;

    /// A CRD object as the API server returns it.
    fn crd(group: &str, kind: &str, plural: &str, short: &[&str], scope: &str) -> serde_json::Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": { "name": format!("{plural}.{group}") },
            "spec": {
                "group": group,
                "names": {
                    "kind": kind,
                    "listKind": format!("{kind}List"),
                    "plural": plural,
                    "singular": kind.to_lowercase(),
                    "shortNames": short,
                    "categories": ["all"],
                },
                "scope": scope,
                "versions": [
                    { "name": "v1alpha1", "served": true, "storage": false },
                    { "name": "v1", "served": true, "storage": true },
                ],
            },
        })
    }

    fn crd_type(group: &str, kind: &str, plural: &str, short: &[&str]) -> ResourceType {
        let c = crd(group, kind, plural, short, "Namespaced");
        match TypeTable::type_from_crd(&c) {
            Some(t) => t,
            None => panic!("test CRD {plural}.{group} should be valid"),
        }
    }

    /// Built-ins plus cert-manager's and Knative's Certificate (the latter
    /// from discovery data) and a cluster-scoped `ClusterIssuer`.
    fn table() -> TypeTable {
        let mut t = TypeTable::builtin();
        t.add(
            crd_type("cert-manager.io", "Certificate", "certificates", &["cert", "certs"]),
            TypeSource::SnapshotCrd,
        );
        let mut issuer = crd_type("cert-manager.io", "ClusterIssuer", "clusterissuers", &[]);
        issuer.namespaced = false;
        t.add(issuer, TypeSource::SnapshotCrd);
        t.add(
            ResourceType {
                group: "networking.internal.knative.dev".into(),
                version: "v1alpha1".into(),
                kind: "Certificate".into(),
                plural: "certificates".into(),
                singular: String::new(),
                short_names: vec!["kcert".into()],
                namespaced: true,
                categories: vec!["knative-internal".into(), "networking".into()],
            },
            TypeSource::Discovery,
        );
        t
    }

    /// Resolves `input` and renders the result as `group/Kind` or the error.
    fn type_of(t: &TypeTable, input: &str) -> String {
        match t.resolve_type(input) {
            Ok(rt) => format!("{}/{}", rt.group, rt.kind),
            Err(e) => format!("error: {e}"),
        }
    }

    fn check_types(t: &TypeTable, cases: &[(&str, &str)]) {
        let mut failures = Vec::new();
        for (input, expected) in cases {
            let got = type_of(t, input);
            if got != *expected {
                failures.push(format!("{input:?}: expected {expected:?}, got {got:?}"));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn short_names() {
        check_types(&table(), &[
            ("deploy", "apps/Deployment"),
            ("cm", "/ConfigMap"),
            ("svc", "/Service"),
            ("po", "/Pod"),
            ("ns", "/Namespace"),
            ("no", "/Node"),
            ("pvc", "/PersistentVolumeClaim"),
            ("pv", "/PersistentVolume"),
            ("rc", "/ReplicationController"),
            ("quota", "/ResourceQuota"),
            ("limits", "/LimitRange"),
            ("sa", "/ServiceAccount"),
            ("ep", "/Endpoints"),
            ("cs", "/ComponentStatus"),
            ("ev", "/Event"),
            ("ds", "apps/DaemonSet"),
            ("rs", "apps/ReplicaSet"),
            ("sts", "apps/StatefulSet"),
            ("hpa", "autoscaling/HorizontalPodAutoscaler"),
            ("cj", "batch/CronJob"),
            ("csr", "certificates.k8s.io/CertificateSigningRequest"),
            ("ing", "networking.k8s.io/Ingress"),
            ("netpol", "networking.k8s.io/NetworkPolicy"),
            ("pdb", "policy/PodDisruptionBudget"),
            ("pc", "scheduling.k8s.io/PriorityClass"),
            ("sc", "storage.k8s.io/StorageClass"),
            ("crd", "apiextensions.k8s.io/CustomResourceDefinition"),
            ("crds", "apiextensions.k8s.io/CustomResourceDefinition"),
            ("cert", "cert-manager.io/Certificate"),
            ("kcert", "networking.internal.knative.dev/Certificate"),
        ]);
    }

    #[test]
    fn plurals_singulars_and_kinds() {
        check_types(&table(), &[
            ("deployments", "apps/Deployment"),
            ("deployment", "apps/Deployment"),
            ("Deployment", "apps/Deployment"),
            ("configmaps", "/ConfigMap"),
            ("configmap", "/ConfigMap"),
            ("ConfigMap", "/ConfigMap"),
            ("endpoints", "/Endpoints"),
            ("Endpoints", "/Endpoints"),
            ("networkpolicies", "networking.k8s.io/NetworkPolicy"),
            ("networkpolicy", "networking.k8s.io/NetworkPolicy"),
            ("ingressclasses", "networking.k8s.io/IngressClass"),
            ("storageclass", "storage.k8s.io/StorageClass"),
            ("CSIStorageCapacity", "storage.k8s.io/CSIStorageCapacity"),
            ("apiservice", "apiregistration.k8s.io/APIService"),
            ("jobs", "batch/Job"),
            ("leases", "coordination.k8s.io/Lease"),
            ("endpointslices", "discovery.k8s.io/EndpointSlice"),
            ("flowschemas", "flowcontrol.apiserver.k8s.io/FlowSchema"),
            ("resourceclaims", "resource.k8s.io/ResourceClaim"),
            ("clusterissuers", "cert-manager.io/ClusterIssuer"),
            ("ClusterIssuer", "cert-manager.io/ClusterIssuer"),
        ]);
    }

    #[test]
    fn group_qualified_forms() {
        check_types(&table(), &[
            ("deployments.apps", "apps/Deployment"),
            ("deployment.apps", "apps/Deployment"),
            ("Deployment.apps", "apps/Deployment"),
            ("deploy.apps", "apps/Deployment"),
            ("deployments.v1.apps", "apps/Deployment"),
            ("Deployment.v1.apps", "apps/Deployment"),
            ("horizontalpodautoscalers.v1.autoscaling", "autoscaling/HorizontalPodAutoscaler"),
            ("cronjobs.v1beta1.batch", "batch/CronJob"),
            ("certificates.cert-manager.io", "cert-manager.io/Certificate"),
            ("certificates.v1.cert-manager.io", "cert-manager.io/Certificate"),
            ("Certificate.cert-manager.io", "cert-manager.io/Certificate"),
            ("certificates.networking.internal.knative.dev", "networking.internal.knative.dev/Certificate"),
            ("events.events.k8s.io", "events.k8s.io/Event"),
            ("ev.events.k8s.io", "events.k8s.io/Event"),
            ("customresourcedefinitions.apiextensions.k8s.io", "apiextensions.k8s.io/CustomResourceDefinition"),
            ("ingresses.networking.k8s.io", "networking.k8s.io/Ingress"),
            // Wrong or partial groups do not match.
            ("deployments.extensions", "error: unknown resource type \"deployments.extensions\""),
            ("certificates.cert-manager", "error: unknown resource type \"certificates.cert-manager\""),
            ("deployments.v1", "error: unknown resource type \"deployments.v1\""),
            ("pods.apps", "error: unknown resource type \"pods.apps\""),
        ]);
    }

    #[test]
    fn case_insensitive_words_and_groups() {
        check_types(&table(), &[
            ("DEPLOY", "apps/Deployment"),
            ("Deployments", "apps/Deployment"),
            ("deployment", "apps/Deployment"),
            ("DEPLOYMENTS.APPS", "apps/Deployment"),
            ("Svc", "/Service"),
            ("configMap", "/ConfigMap"),
            ("CERTIFICATES.CERT-MANAGER.IO", "cert-manager.io/Certificate"),
            ("Deployments.V1.Apps", "apps/Deployment"),
            ("deployments.v1.Apps", "apps/Deployment"),
        ]);
    }

    #[test]
    fn unknown_and_malformed_names() {
        check_types(&table(), &[
            ("frobnicators", "error: unknown resource type \"frobnicators\""),
            ("deployments.", "error: unknown resource type \"deployments.\""),
            (".apps", "error: unknown resource type \".apps\""),
            ("deployments..apps", "error: unknown resource type \"deployments..apps\""),
            ("", "error: empty resource type: expected TYPE or TYPE/NAME, e.g. deployment/web"),
            ("   ", "error: empty resource type: expected TYPE or TYPE/NAME, e.g. deployment/web"),
            (" deploy ", "apps/Deployment"),
        ]);
        let t = table();
        let err = t.resolve_type("frobnicators").err();
        assert_eq!(err, Some(NameError::UnknownType { name: "frobnicators".into() }));
    }

    #[test]
    fn ambiguity_lists_sorted_candidates() {
        let t = table();
        let expected = NameError::Ambiguous {
            name: "certificate".into(),
            candidates: vec![
                "Certificate.cert-manager.io".into(),
                "Certificate.networking.internal.knative.dev".into(),
            ],
        };
        assert_eq!(t.resolve_type("certificate").err(), Some(expected));
        check_types(&t, &[
            ("certificate", "error: \"certificate\" is ambiguous: Certificate.cert-manager.io, Certificate.networking.internal.knative.dev; qualify it with its group"),
            ("certificates", "error: \"certificates\" is ambiguous: Certificate.cert-manager.io, Certificate.networking.internal.knative.dev; qualify it with its group"),
            ("Certificate", "error: \"Certificate\" is ambiguous: Certificate.cert-manager.io, Certificate.networking.internal.knative.dev; qualify it with its group"),
        ]);

        // Two snapshot CRDs, added in reverse order: still sorted.
        let mut two = TypeTable::builtin();
        two.add(crd_type("z.example.com", "Widget", "widgets", &[]), TypeSource::SnapshotCrd);
        two.add(crd_type("a.example.com", "Widget", "widgets", &[]), TypeSource::SnapshotCrd);
        check_types(&two, &[
            ("widget", "error: \"widget\" is ambiguous: Widget.a.example.com, Widget.z.example.com; qualify it with its group"),
            ("widgets.a.example.com", "a.example.com/Widget"),
            ("widgets.z.example.com", "z.example.com/Widget"),
        ]);
    }

    #[test]
    fn same_type_from_several_sources_counts_once() {
        let mut t = TypeTable::builtin();
        let cert = crd_type("cert-manager.io", "Certificate", "certificates", &["cert"]);
        t.add(cert.clone(), TypeSource::SnapshotCrd);
        let mut from_discovery = cert.clone();
        from_discovery.version = "v1beta1".into();
        t.add(from_discovery, TypeSource::Discovery);
        check_types(&t, &[("certificate", "cert-manager.io/Certificate")]);
        // The first, better source is kept.
        assert_eq!(t.lookup_kind("cert-manager.io", "Certificate").map(|r| r.version.as_str()), Some("v1"));
        assert_eq!(t.source("cert-manager.io", "Certificate"), Some(TypeSource::SnapshotCrd));
        assert_eq!(t.types().filter(|r| r.kind == "Certificate").count(), 1);

        // Discovery data re-describing a built-in does not replace it...
        let mut deploy = t.lookup_kind("apps", "Deployment").cloned().unwrap_or_else(|| panic!("no Deployment"));
        deploy.version = "v1beta2".into();
        t.add(deploy.clone(), TypeSource::Discovery);
        assert_eq!(t.lookup_kind("apps", "Deployment").map(|r| r.version.as_str()), Some("v1"));
        assert_eq!(t.source("apps", "Deployment"), Some(TypeSource::BuiltIn));

        // ...while a better source added later does.
        let mut late = TypeTable::new();
        late.add(deploy, TypeSource::Discovery);
        for r in TypeTable::builtin().types() {
            late.add(r.clone(), TypeSource::BuiltIn);
        }
        assert_eq!(late.lookup_kind("apps", "Deployment").map(|r| r.version.as_str()), Some("v1"));
        assert_eq!(late.source("apps", "Deployment"), Some(TypeSource::BuiltIn));
        assert_eq!(late.types().count(), TypeTable::builtin().types().count());
    }

    #[test]
    fn core_wins_over_non_builtin_groups() {
        let mut t = TypeTable::builtin();
        t.add(crd_type("example.com", "Service", "services", &["svc", "esvc"]), TypeSource::SnapshotCrd);
        t.add(crd_type("other.example.com", "Gadget", "gadgets", &["svc", "po"]), TypeSource::Discovery);
        t.add(crd_type("example.com", "Deployment", "deployments", &["deploy"]), TypeSource::Discovery);
        check_types(&t, &[
            ("svc", "/Service"),
            ("service", "/Service"),
            ("services", "/Service"),
            ("Service", "/Service"),
            ("po", "/Pod"),
            ("deploy", "apps/Deployment"),
            ("deployments", "apps/Deployment"),
            ("services.example.com", "example.com/Service"),
            ("svc.example.com", "example.com/Service"),
            ("Service.v1.example.com", "example.com/Service"),
            ("esvc", "example.com/Service"),
            ("deployments.example.com", "example.com/Deployment"),
            ("gadget", "other.example.com/Gadget"),
            // Core beats the other built-in groups too.
            ("events", "/Event"),
            ("event", "/Event"),
            ("ev", "/Event"),
            ("Event", "/Event"),
            ("events.events.k8s.io", "events.k8s.io/Event"),
        ]);

        // A discovered type of a built-in group (not in the built-in table)
        // also beats CRDs.
        let mut d = TypeTable::builtin();
        d.add(crd_type("example.com", "VolumeAttributesClass", "volumeattributesclasses", &["vac"]), TypeSource::SnapshotCrd);
        d.add(
            ResourceType {
                group: "storage.k8s.io".into(),
                version: "v1beta1".into(),
                kind: "VolumeAttributesClass".into(),
                plural: "volumeattributesclasses".into(),
                singular: "volumeattributesclass".into(),
                short_names: vec!["vac".into()],
                namespaced: false,
                categories: vec![],
            },
            TypeSource::Discovery,
        );
        check_types(&d, &[
            ("vac", "storage.k8s.io/VolumeAttributesClass"),
            ("volumeattributesclasses.example.com", "example.com/VolumeAttributesClass"),
        ]);
    }

    #[test]
    fn crd_from_json_resolves() {
        let c = crd("cert-manager.io", "Issuer", "issuers", &["iss"], "Namespaced");
        let Some(rt) = TypeTable::type_from_crd(&c) else {
            panic!("valid CRD rejected");
        };
        assert_eq!(
            rt,
            ResourceType {
                group: "cert-manager.io".into(),
                version: "v1".into(),
                kind: "Issuer".into(),
                plural: "issuers".into(),
                singular: "issuer".into(),
                short_names: vec!["iss".into()],
                namespaced: true,
                categories: vec!["all".into()],
            }
        );
        let mut t = TypeTable::builtin();
        t.add(rt, TypeSource::SnapshotCrd);
        check_types(&t, &[
            ("issuers", "cert-manager.io/Issuer"),
            ("issuer", "cert-manager.io/Issuer"),
            ("Issuer", "cert-manager.io/Issuer"),
            ("iss", "cert-manager.io/Issuer"),
            ("issuers.cert-manager.io", "cert-manager.io/Issuer"),
            ("issuers.v1.cert-manager.io", "cert-manager.io/Issuer"),
        ]);
        match t.resolve("iss/letsencrypt-prod") {
            Ok((rt, name)) => {
                assert_eq!((rt.kind.as_str(), name.as_str()), ("Issuer", "letsencrypt-prod"));
            }
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn crd_json_variants() {
        let version_of = |v: serde_json::Value| TypeTable::type_from_crd(&v).map(|t| t.version);
        let base = |versions: serde_json::Value| {
            json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "spec": {
                    "group": "example.com",
                    "names": { "kind": "Widget", "plural": "widgets" },
                    "scope": "Cluster",
                    "versions": versions,
                },
            })
        };
        let cases: Vec<(&str, serde_json::Value, Option<&str>)> = vec![
            ("storage and served", base(json!([{"name": "v1", "served": true, "storage": false}, {"name": "v2", "served": true, "storage": true}])), Some("v2")),
            ("storage not served", base(json!([{"name": "v1", "served": false, "storage": true}, {"name": "v2", "served": true, "storage": false}])), Some("v2")),
            ("nothing served", base(json!([{"name": "v1", "served": false, "storage": true}])), Some("v1")),
            ("no versions", base(json!([])), None),
            ("v1beta1 spec.version", json!({
                "apiVersion": "apiextensions.k8s.io/v1beta1",
                "kind": "CustomResourceDefinition",
                "spec": { "group": "example.com", "version": "v1alpha1", "scope": "Namespaced",
                          "names": { "kind": "Widget", "plural": "widgets" } },
            }), Some("v1alpha1")),
            ("no kind/apiVersion", json!({
                "spec": { "group": "example.com", "scope": "Namespaced",
                          "names": { "kind": "Widget", "plural": "widgets" },
                          "versions": [{"name": "v1", "served": true, "storage": true}] },
            }), Some("v1")),
            ("wrong kind", json!({"kind": "ConfigMap", "spec": {}}), None),
            ("wrong apiVersion", json!({
                "apiVersion": "v1", "kind": "CustomResourceDefinition",
                "spec": { "group": "example.com", "scope": "Namespaced",
                          "names": { "kind": "Widget", "plural": "widgets" },
                          "versions": [{"name": "v1", "served": true, "storage": true}] },
            }), None),
            ("missing group", json!({"spec": {"scope": "Cluster", "names": {"kind": "W", "plural": "ws"}, "version": "v1"}}), None),
            ("empty plural", json!({"spec": {"group": "g.io", "scope": "Cluster", "names": {"kind": "W", "plural": ""}, "version": "v1"}}), None),
            ("bad scope", json!({"spec": {"group": "g.io", "scope": "Global", "names": {"kind": "W", "plural": "ws"}, "version": "v1"}}), None),
            ("not an object", json!("crd"), None),
            ("null", serde_json::Value::Null, None),
        ];
        for (what, value, expected) in cases {
            assert_eq!(version_of(value).as_deref(), expected, "{what}");
        }

        // Missing singular and short names: kind lowercased, no short names.
        let Some(t) = TypeTable::type_from_crd(&base(json!([{"name": "v1", "served": true, "storage": true}]))) else {
            panic!("valid CRD rejected");
        };
        assert_eq!(t.singular, "widget");
        assert!(t.short_names.is_empty() && t.categories.is_empty());
        assert!(!t.namespaced);
    }

    #[test]
    fn scope_flags() {
        let t = table();
        let cases: &[(&str, bool)] = &[
            ("pods", true),
            ("services", true),
            ("configmaps", true),
            ("secrets", true),
            ("deployments", true),
            ("rolebindings", true),
            ("csistoragecapacities", true),
            ("resourceclaims", true),
            ("cert", true),
            ("nodes", false),
            ("namespaces", false),
            ("persistentvolumes", false),
            ("componentstatuses", false),
            ("crd", false),
            ("apiservices", false),
            ("clusterroles", false),
            ("clusterrolebindings", false),
            ("storageclasses", false),
            ("priorityclasses", false),
            ("ipaddresses", false),
            ("resourceslices", false),
            ("mutatingwebhookconfigurations", false),
            ("clusterissuers", false),
        ];
        for (name, namespaced) in cases {
            match t.resolve_type(name) {
                Ok(rt) => assert_eq!(rt.namespaced, *namespaced, "{name}"),
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }

    #[test]
    fn resolve_type_slash_name() {
        type Expected = Result<(&'static str, &'static str), NameError>;
        let t = table();
        let cases: &[(&str, Expected)] = &[
            ("deployment/web", Ok(("Deployment", "web"))),
            ("deployments/web", Ok(("Deployment", "web"))),
            ("deploy/web", Ok(("Deployment", "web"))),
            ("deployments.apps/web", Ok(("Deployment", "web"))),
            ("Deployment.apps/web", Ok(("Deployment", "web"))),
            ("deployment.apps/web", Ok(("Deployment", "web"))),
            ("deployments.v1.apps/web", Ok(("Deployment", "web"))),
            ("cm/x", Ok(("ConfigMap", "x"))),
            ("svc/x", Ok(("Service", "x"))),
            ("crd/certificates.cert-manager.io", Ok(("CustomResourceDefinition", "certificates.cert-manager.io"))),
            ("configmap/my.config.v1", Ok(("ConfigMap", "my.config.v1"))),
            ("certificates.cert-manager.io/x", Ok(("Certificate", "x"))),
            ("cm/a/b", Ok(("ConfigMap", "a/b"))),
            (" cm/x ", Ok(("ConfigMap", "x"))),
            ("deploy/", Err(NameError::MissingName { spec: "deploy/".into() })),
            ("deploy", Err(NameError::MissingName { spec: "deploy".into() })),
            ("/web", Err(NameError::Empty)),
            ("", Err(NameError::Empty)),
            ("nope/x", Err(NameError::UnknownType { name: "nope".into() })),
            ("certificate/x", Err(NameError::Ambiguous {
                name: "certificate".into(),
                candidates: vec!["Certificate.cert-manager.io".into(), "Certificate.networking.internal.knative.dev".into()],
            })),
        ];
        for (input, expected) in cases {
            let got = t.resolve(input).map(|(rt, name)| (rt.kind.clone(), name));
            let expected = expected.clone().map(|(k, n)| (k.to_string(), n.to_string()));
            assert_eq!(got, expected, "{input:?}");
        }
    }

    #[test]
    fn error_messages() {
        let t = table();
        let msg = |spec: &str| t.resolve(spec).err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(msg("deploy/"), "\"deploy/\" names no object: expected TYPE/NAME, e.g. deployment/web");
        assert_eq!(msg("widgets/x"), "unknown resource type \"widgets\"");
        assert_eq!(
            msg("certificate/x"),
            "\"certificate\" is ambiguous: Certificate.cert-manager.io, Certificate.networking.internal.knative.dev; qualify it with its group"
        );
        assert_eq!(msg(""), "empty resource type: expected TYPE or TYPE/NAME, e.g. deployment/web");
    }

    #[test]
    fn lookup_kind_is_exact() {
        let t = table();
        let found = |g: &str, k: &str| t.lookup_kind(g, k).map(|r| r.plural.as_str());
        assert_eq!(found("apps", "Deployment"), Some("deployments"));
        assert_eq!(found("", "Pod"), Some("pods"));
        assert_eq!(found("", "Event"), Some("events"));
        assert_eq!(found("events.k8s.io", "Event"), Some("events"));
        assert_eq!(found("cert-manager.io", "Certificate"), Some("certificates"));
        assert_eq!(found("apps", "deployment"), None);
        assert_eq!(found("", "Deployment"), None);
        assert_eq!(found("example.com", "Pod"), None);
        // Discovery data with an empty singular gets the kind lowercased.
        let knative = t.lookup_kind("networking.internal.knative.dev", "Certificate");
        assert_eq!(knative.map(|r| r.singular.as_str()), Some("certificate"));
    }

    #[test]
    fn builtin_table_is_consistent() {
        let t = TypeTable::builtin();
        let all: Vec<&ResourceType> = t.types().collect();
        assert_eq!(all.len(), BUILTIN_TYPES.len(), "duplicate (group, kind) in the built-in table");
        for rt in &all {
            let qualified = if rt.group.is_empty() { rt.plural.clone() } else { format!("{}.{}", rt.plural, rt.group) };
            // Every built-in resolves by plural.group, Kind.version.group and
            // each of its short names (core events aside, see core_wins...).
            assert_eq!(t.resolve_type(&qualified).ok(), Some(*rt), "{qualified}");
            if !rt.group.is_empty() {
                let kvg = format!("{}.{}.{}", rt.kind, rt.version, rt.group);
                assert_eq!(t.resolve_type(&kvg).ok(), Some(*rt), "{kvg}");
            }
            assert_eq!(t.source(&rt.group, &rt.kind), Some(TypeSource::BuiltIn));
            assert!(is_version(&rt.version), "{}", rt.version);
            assert!(group_tier(&rt.group) < 2, "{} is not a built-in group", rt.group);
            assert!(!rt.singular.is_empty() && rt.plural == rt.plural.to_lowercase());
            let is_events_k8s_io = rt.group == "events.k8s.io";
            for word in rt.short_names.iter().chain([&rt.plural, &rt.singular, &rt.kind]) {
                let got = t.resolve_type(word).ok().map(|r| (r.group.as_str(), r.kind.as_str()));
                let want = if is_events_k8s_io { ("", "Event") } else { (rt.group.as_str(), rt.kind.as_str()) };
                assert_eq!(got, Some(want), "{word}");
            }
        }
        let in_category = |c: &str| {
            let mut v: Vec<&str> = all.iter().filter(|r| r.categories.iter().any(|x| x == c)).map(|r| r.plural.as_str()).collect();
            v.sort_unstable();
            v
        };
        assert_eq!(in_category("all"), [
            "cronjobs", "daemonsets", "deployments", "horizontalpodautoscalers", "jobs", "pods",
            "replicasets", "replicationcontrollers", "services", "statefulsets",
        ]);
        assert_eq!(in_category("api-extensions"), [
            "apiservices", "customresourcedefinitions", "mutatingwebhookconfigurations",
            "validatingadmissionpolicies", "validatingadmissionpolicybindings", "validatingwebhookconfigurations",
        ]);
    }

    #[test]
    fn versions_pattern() {
        let cases: &[(&str, bool)] = &[
            ("v1", true), ("v2", true), ("v10", true), ("v1beta1", true), ("v1alpha3", true),
            ("v2beta12", true), ("v", false), ("1", false), ("v1beta", false), ("v1gamma1", false),
            ("vbeta1", false), ("V1", false), ("v1.2", false), ("", false), ("v1alpha1x", false),
        ];
        for (s, expected) in cases {
            assert_eq!(is_version(s), *expected, "{s:?}");
        }
    }

    #[test]
    fn resource_type_serde_roundtrip() {
        let t = TypeTable::builtin();
        let Some(rt) = t.lookup_kind("apps", "Deployment") else { panic!("no Deployment") };
        let text = serde_json::to_string(rt).unwrap_or_default();
        let back: Option<ResourceType> = serde_json::from_str(&text).ok();
        assert_eq!(back.as_ref(), Some(rt));
        assert_eq!(rt.display_name(), "Deployment.apps");
        assert_eq!(t.lookup_kind("", "Pod").map(ResourceType::display_name).as_deref(), Some("Pod"));
    }
}

//! Choosing snapshots (`latest`, `latest~N`, an id prefix, `--at TIME`, `--cluster`) and
//! resources (kubectl-style names, `-n`, `--kind`).

use chrono::{DateTime, Utc};

use crate::format::log::SnapshotSummary;
use crate::format::resource::ResourceRef;
use crate::format::snapshot::{Roots, SnapshotManifest};
use crate::format::tree::{Level, ResourceEntry, Value};
use crate::k8s::names::{NameError, ResourceType, TypeSource, TypeTable};
use crate::repo::{tree, Repository};
use crate::timeutil;
use crate::{Error, Result};

/// The clusters the repository holds snapshots of, sorted.
pub fn clusters(repo: &Repository) -> Vec<String> {
    let mut c: Vec<String> = repo.snapshots().into_iter().map(|s| s.cluster).collect();
    c.sort();
    c.dedup();
    c
}

/// The cluster a command works on: the one named, or the only one there is.
pub fn choose_cluster(repo: &Repository, cluster: Option<&str>) -> Result<Option<String>> {
    let all = clusters(repo);
    match cluster {
        Some(c) => {
            if all.iter().any(|x| x == c) {
                Ok(Some(c.to_owned()))
            } else {
                Err(Error::NotFound {
                    what: "cluster",
                    name: c.to_owned(),
                    hint: if all.is_empty() {
                        " (the repository has no snapshots)".into()
                    } else {
                        format!(" (the repository has: {})", all.join(", "))
                    },
                })
            }
        }
        None if all.len() <= 1 => Ok(all.into_iter().next()),
        None => Err(Error::Ambiguous(format!(
            "the repository holds snapshots of several clusters ({}): name one with --cluster",
            all.join(", ")
        ))),
    }
}

/// Snapshots of one cluster (or all when None), oldest first.
pub fn of_cluster(repo: &Repository, cluster: Option<&str>) -> Vec<SnapshotSummary> {
    repo.snapshots().into_iter().filter(|s| cluster.is_none_or(|c| s.cluster == c)).collect()
}

/// Resolves a snapshot name: an id, a unique id prefix, `latest` or `latest~N`.
pub fn snapshot(repo: &Repository, spec: &str, cluster: Option<&str>) -> Result<SnapshotSummary> {
    if spec == "latest" || spec.starts_with("latest~") {
        let n: usize = match spec.strip_prefix("latest~") {
            None => 0,
            Some(n) => n.parse().map_err(|_| Error::Usage(format!("{spec:?}: expected latest~N with N a number")))?,
        };
        let cluster = choose_cluster(repo, cluster)?;
        let list = of_cluster(repo, cluster.as_deref());
        if list.is_empty() {
            return Err(Error::not_found("snapshot", format!("{spec} (the repository has no snapshots)")));
        }
        return list
            .len()
            .checked_sub(n + 1)
            .map(|i| list[i].clone())
            .ok_or_else(|| Error::not_found("snapshot", format!("{spec} (there are only {} snapshots)", list.len())));
    }
    let lower = spec.to_ascii_lowercase();
    if lower.is_empty() || !lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Usage(format!(
            "{spec:?} is not a snapshot name: give an id, an id prefix, latest or latest~N"
        )));
    }
    let matches: Vec<SnapshotSummary> = repo
        .snapshots()
        .into_iter()
        .filter(|s| cluster.is_none_or(|c| s.cluster == c) && s.id.to_hex().starts_with(&lower))
        .collect();
    match matches.len() {
        0 => Err(Error::not_found("snapshot", spec)),
        1 => Ok(matches.into_iter().next().unwrap_or_else(unreachable_summary)),
        n => Err(Error::Ambiguous(format!("snapshot prefix {spec:?} matches {n} snapshots: give more digits"))),
    }
}

fn unreachable_summary() -> SnapshotSummary {
    SnapshotSummary {
        id: Default::default(),
        time: String::new(),
        cluster: String::new(),
        tags: vec![],
        objects: 0,
        partial: false,
    }
}

/// The newest snapshot whose time is at or before `t` (ties: the last committed).
pub fn at(repo: &Repository, t: DateTime<Utc>, cluster: Option<&str>) -> Result<SnapshotSummary> {
    let cluster = choose_cluster(repo, cluster)?;
    of_cluster(repo, cluster.as_deref())
        .into_iter()
        .rfind(|s| timeutil::parse_stored(&s.time).is_some_and(|st| st <= t))
        .ok_or_else(|| Error::not_found("snapshot", format!("at or before {}", timeutil::format(&t))))
}

/// Kubernetes' built-in types, then the snapshot's CRDs, then its recorded discovery data.
pub fn type_table(manifest: &SnapshotManifest) -> TypeTable {
    let mut t = TypeTable::builtin();
    for ti in &manifest.types {
        let source = if ti.source == "discovery" { TypeSource::Discovery } else { TypeSource::SnapshotCrd };
        t.add(
            ResourceType {
                group: ti.group.clone(),
                version: ti.version.clone(),
                kind: ti.kind.clone(),
                plural: ti.plural.clone(),
                singular: ti.singular.clone(),
                short_names: ti.short_names.clone(),
                namespaced: ti.namespaced,
                categories: ti.categories.clone(),
            },
            source,
        );
    }
    t
}

/// A resource type: group and kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KindRef {
    pub group: String,
    pub kind: String,
}

fn name_error(e: NameError) -> Error {
    match e {
        NameError::Ambiguous { .. } => Error::Ambiguous(e.to_string()),
        NameError::UnknownType { .. } => Error::not_found("resource type", e.to_string()),
        other => Error::Usage(other.to_string()),
    }
}

/// The (group, kind) pairs present in a snapshot (read from the tree's upper levels).
pub fn kinds_in(repo: &Repository, roots: &Roots) -> Result<Vec<KindRef>> {
    let mut out = Vec::new();
    let add_groups = |root: &crate::format::BlobId, out: &mut Vec<KindRef>| -> Result<()> {
        for (group, v) in tree::level_entries(repo, root, Level::Groups)? {
            if let Value::Subtree { id, .. } = v {
                for (kind, _) in tree::level_entries(repo, &id, Level::Kinds)? {
                    out.push(KindRef { group: group.clone(), kind });
                }
            }
        }
        Ok(())
    };
    if let Some(c) = &roots.cluster {
        add_groups(c, &mut out)?;
    }
    if let Some(n) = &roots.namespaces {
        for (_, v) in tree::level_entries(repo, n, Level::Namespaces)? {
            if let Value::Subtree { id, .. } = v {
                add_groups(&id, &mut out)?;
            }
        }
    }
    out.sort_by(|a, b| (&a.group, &a.kind).cmp(&(&b.group, &b.kind)));
    out.dedup();
    Ok(out)
}

/// Resolves a type name (`deploy`, `deployments.apps`, `Certificate.cert-manager.io`) through
/// the type table, falling back to the kinds present in the snapshot (custom resources whose
/// CRD the snapshot does not hold).
pub fn resolve_kind(repo: &Repository, manifest: &SnapshotManifest, name: &str) -> Result<KindRef> {
    let table = type_table(manifest);
    match table.resolve_type(name) {
        Ok(t) => Ok(KindRef { group: t.group.clone(), kind: t.kind.clone() }),
        Err(e @ NameError::UnknownType { .. }) => {
            let (word, group) = match name.split_once('.') {
                Some((w, g)) => (w, Some(g)),
                None => (name, None),
            };
            let found: Vec<KindRef> = kinds_in(repo, &manifest.roots)?
                .into_iter()
                .filter(|k| k.kind.eq_ignore_ascii_case(word) && group.is_none_or(|g| g == k.group))
                .collect();
            match found.len() {
                0 => Err(name_error(e)),
                1 => Ok(found.into_iter().next().unwrap_or(KindRef { group: String::new(), kind: String::new() })),
                _ => Err(Error::Ambiguous(format!(
                    "{name:?} is ambiguous: {}; qualify it with its group",
                    found.iter().map(|k| format!("{}.{}", k.kind, k.group)).collect::<Vec<_>>().join(", ")
                ))),
            }
        }
        Err(e) => Err(name_error(e)),
    }
}

/// Splits `TYPE/NAME` and resolves the type.
pub fn resolve_resource(repo: &Repository, manifest: &SnapshotManifest, spec: &str) -> Result<(KindRef, String)> {
    let Some((t, name)) = spec.split_once('/') else {
        return Err(Error::Usage(format!("{spec:?}: name a resource as TYPE/NAME, e.g. deployment/web")));
    };
    if name.is_empty() {
        return Err(Error::Usage(format!("{spec:?} names no object: expected TYPE/NAME, e.g. deployment/web")));
    }
    Ok((resolve_kind(repo, manifest, t)?, name.to_owned()))
}

fn lookup_path(repo: &Repository, root: &crate::format::BlobId, first: Level, keys: &[&str]) -> Result<Option<Value>> {
    let mut level = first;
    let mut id = *root;
    for (i, key) in keys.iter().enumerate() {
        let Some(v) = tree::lookup(repo, &id, level, key)? else { return Ok(None) };
        if i + 1 == keys.len() {
            return Ok(Some(v));
        }
        match (v, level.child()) {
            (Value::Subtree { id: next, .. }, Some(child)) => {
                id = next;
                level = child;
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Finds one resource. Without a namespace, a namespaced name must match exactly one namespace.
pub fn find_resource(
    repo: &Repository,
    roots: &Roots,
    kind: &KindRef,
    name: &str,
    namespace: Option<&str>,
) -> Result<(ResourceRef, ResourceEntry)> {
    let mut found: Vec<(ResourceRef, ResourceEntry)> = Vec::new();
    let make = |ns: &str| ResourceRef {
        group: kind.group.clone(),
        kind: kind.kind.clone(),
        namespace: ns.to_owned(),
        name: name.to_owned(),
    };
    if let Some(c) = &roots.cluster {
        if let Some(Value::Resource(e)) = lookup_path(repo, c, Level::Groups, &[&kind.group, &kind.kind, name])? {
            found.push((make(""), e));
        }
    }
    if let Some(n) = &roots.namespaces {
        match namespace {
            Some(ns) => {
                if let Some(Value::Resource(e)) =
                    lookup_path(repo, n, Level::Namespaces, &[ns, &kind.group, &kind.kind, name])?
                {
                    found.push((make(ns), e));
                }
            }
            None => {
                for (ns, v) in tree::level_entries(repo, n, Level::Namespaces)? {
                    if let Value::Subtree { id, .. } = v {
                        if let Some(Value::Resource(e)) =
                            lookup_path(repo, &id, Level::Groups, &[&kind.group, &kind.kind, name])?
                        {
                            found.push((make(&ns), e));
                        }
                    }
                }
            }
        }
    }
    // A cluster-scoped match stands even when -n was given (kubectl ignores -n for those).
    let display = |k: &KindRef| if k.group.is_empty() { k.kind.clone() } else { format!("{}.{}", k.kind, k.group) };
    match found.len() {
        0 => Err(Error::not_found(
            "resource",
            format!(
                "{}/{}{}",
                display(kind),
                name,
                namespace.map(|n| format!(" in namespace {n}")).unwrap_or_default()
            ),
        )),
        1 => Ok(found.remove(0)),
        _ => Err(Error::Ambiguous(format!(
            "{}/{} exists in several namespaces ({}): choose one with -n",
            display(kind),
            name,
            found
                .iter()
                .map(|(r, _)| if r.namespace.is_empty() { "(cluster)".to_owned() } else { r.namespace.clone() })
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `-n` and `--kind` filters.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub kind: Option<KindRef>,
}

impl Filter {
    pub fn matches(&self, r: &ResourceRef) -> bool {
        self.namespace.as_ref().is_none_or(|n| &r.namespace == n)
            && self.kind.as_ref().is_none_or(|k| k.group == r.group && k.kind == r.kind)
    }
}

/// Every resource of a snapshot that passes the filter, reading only the subtrees it needs.
pub fn walk_filtered(
    repo: &Repository,
    roots: &Roots,
    filter: &Filter,
    f: &mut dyn FnMut(ResourceRef, ResourceEntry) -> Result<()>,
) -> Result<()> {
    let visit_groups = |root: &crate::format::BlobId,
                        ns: &str,
                        f: &mut dyn FnMut(ResourceRef, ResourceEntry) -> Result<()>|
     -> Result<()> {
        match &filter.kind {
            Some(k) => {
                if let Some(Value::Subtree { id, .. }) = lookup_path(repo, root, Level::Groups, &[&k.group, &k.kind])? {
                    tree::walk(repo, &id, Level::Names, &mut vec![ns.to_owned(), k.group.clone(), k.kind.clone()], f)?;
                }
                Ok(())
            }
            None => tree::walk(repo, root, Level::Groups, &mut vec![ns.to_owned()], f),
        }
    };
    if filter.namespace.is_none() {
        if let Some(c) = &roots.cluster {
            visit_groups(c, "", f)?;
        }
    }
    if let Some(n) = &roots.namespaces {
        match &filter.namespace {
            Some(ns) => {
                if let Some(Value::Subtree { id, .. }) = tree::lookup(repo, n, Level::Namespaces, ns)? {
                    visit_groups(&id, ns, f)?;
                }
            }
            None => {
                for (ns, v) in tree::level_entries(repo, n, Level::Namespaces)? {
                    if let Value::Subtree { id, .. } = v {
                        visit_groups(&id, &ns, f)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Resolves `-n`/`--kind` options into a filter.
pub fn filter(
    repo: &Repository,
    manifest: &SnapshotManifest,
    namespace: Option<&str>,
    kind: Option<&str>,
) -> Result<Filter> {
    Ok(Filter {
        namespace: namespace.map(str::to_owned),
        kind: kind.map(|k| resolve_kind(repo, manifest, k)).transpose()?,
    })
}

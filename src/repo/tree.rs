//! Building, reading and diffing snapshot trees (see `format::tree` for the node layout).
//!
//! A level's entries are cut into nodes where the keyed boundary hash of an entry's key falls
//! below `u32::MAX / fanout` (or after `max_entries`), then the nodes' first keys are cut the same
//! way one height up, until one node remains. Boundaries depend only on keys, so the same
//! entries always give the same nodes, and an insertion or change rewrites only the nodes on its
//! path: a namespace with 50,000 ConfigMaps is not rewritten whole when one changes.

use std::collections::HashSet;
use std::sync::Arc;

use super::packer::Packer;
use super::Repository;
use crate::format::pack::BlobType;
use crate::format::resource::ResourceRef;
use crate::format::snapshot::Roots;
use crate::format::tree::{Child, Level, Node, NodeBody, PartRef, ResourceEntry, Value};
use crate::format::BlobId;
use crate::{Error, Result};

/// Writes tree nodes that the repository does not have yet.
pub struct TreeWriter<'a> {
    repo: &'a Repository,
    pub packer: Packer,
    /// Nodes are packed in the order they are written, which is the tree's depth-first order:
    /// a walk of one namespace, or a restore, then reads few frames.
    written: u64,
}

impl<'a> TreeWriter<'a> {
    pub fn new(repo: &'a Repository) -> TreeWriter<'a> {
        TreeWriter { repo, packer: Packer::new(crate::format::pack::PackKind::Tree), written: 0 }
    }

    fn store(&mut self, node: &Node) -> Result<BlobId> {
        let bytes = node.encode();
        let id = self.repo.key().blob_id(&bytes);
        if !self.packer.contains(&id) && self.repo.locate(&id)?.is_none() {
            self.written += 1;
            self.packer.add(self.repo, id, BlobType::Tree, bytes, self.written.to_be_bytes().to_vec())?;
        }
        Ok(id)
    }

    fn boundary(&self, level: Level, height: u8, key: &str) -> bool {
        let fanout = self.repo.config().tree.fanout.max(2);
        self.repo.key().tree_hash((level as u8) << 4 | height.min(15), key.as_bytes()) < u32::MAX / fanout
    }

    /// Writes one level (entries sorted by key, keys unique); returns its root and the number of
    /// resources below it.
    pub fn write_level(&mut self, level: Level, entries: Vec<(String, Value)>) -> Result<(BlobId, u64)> {
        let max = self.repo.config().tree.max_entries.max(2) as usize;
        let mut children: Vec<Child> = Vec::new();
        let mut cur: Vec<(String, Value)> = Vec::new();
        let mut count = 0u64;
        let total = entries.len();
        for (i, (k, v)) in entries.into_iter().enumerate() {
            count += v.resources();
            let cut = self.boundary(level, 0, &k);
            cur.push((k, v));
            if cut || cur.len() >= max || i + 1 == total {
                let first_key = cur[0].0.clone();
                let node = Node { level, body: NodeBody::Leaf(std::mem::take(&mut cur)) };
                let id = self.store(&node)?;
                children.push(Child { first_key, id, resources: count });
                count = 0;
            }
        }
        if children.is_empty() {
            let node = Node { level, body: NodeBody::Leaf(Vec::new()) };
            let id = self.store(&node)?;
            return Ok((id, 0));
        }
        let mut height = 1u8;
        while children.len() > 1 {
            let mut parents: Vec<Child> = Vec::new();
            let mut cur: Vec<Child> = Vec::new();
            let n = children.len();
            let mut cuts: Vec<bool> = children.iter().map(|c| self.boundary(level, height, &c.first_key)).collect();
            if cuts[..n - 1].iter().all(|c| *c) {
                // Every key is a boundary at this height: group by size alone, so that the
                // level always shrinks (deterministic: depends only on the keys).
                cuts.iter_mut().for_each(|c| *c = false);
            }
            for (i, c) in children.into_iter().enumerate() {
                let cut = cuts[i];
                cur.push(c);
                if cut || cur.len() >= max || i + 1 == n {
                    let first_key = cur[0].first_key.clone();
                    let resources = cur.iter().map(|c| c.resources).sum();
                    let node = Node { level, body: NodeBody::Internal(std::mem::take(&mut cur)) };
                    let id = self.store(&node)?;
                    parents.push(Child { first_key, id, resources });
                }
            }
            children = parents;
            height = height.saturating_add(1);
        }
        let root = children.remove(0);
        Ok((root.id, root.resources))
    }

    /// Writes the whole tree of a snapshot from its resources, which must be sorted in tree
    /// order ([`tree_order`]) without duplicates. Streams through them level by level: no
    /// second copy of the resources is built.
    pub fn write_snapshot(&mut self, mut resources: Vec<(ResourceRef, ResourceEntry)>) -> Result<Roots> {
        let split = resources.partition_point(|(r, _)| r.namespace.is_empty());
        let mut roots = Roots::default();
        if split > 0 {
            roots.cluster = Some(self.write_groups(&mut resources[..split])?.0);
        }
        if split < resources.len() {
            // Namespaces are independent subtrees: they are written on every core, each worker
            // taking a contiguous share (so each pack still follows the tree's order).
            let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8);
            let share = (resources.len() - split).div_ceil(threads).max(1);
            let namespaces = runs(&mut resources[split..], |r| &r.namespace);
            let mut groups: Vec<Vec<&mut [(ResourceRef, ResourceEntry)]>> = vec![Vec::new()];
            let mut in_group = 0;
            for run in namespaces {
                if in_group >= share {
                    groups.push(Vec::new());
                    in_group = 0;
                }
                in_group += run.len();
                if let Some(g) = groups.last_mut() {
                    g.push(run);
                }
            }
            let repo = self.repo;
            type Written<'r> = (Vec<(String, Value)>, Packer);
            let results: Vec<Result<Written<'_>>> = std::thread::scope(|s| {
                let handles: Vec<_> = groups
                    .into_iter()
                    .map(|group| {
                        s.spawn(move || -> Result<Written<'_>> {
                            let mut tw = TreeWriter::new(repo);
                            let mut entries = Vec::with_capacity(group.len());
                            for run in group {
                                let ns = run[0].0.namespace.clone();
                                let (id, count) = tw.write_groups(run)?;
                                entries.push((ns, Value::Subtree { id, resources: count }));
                            }
                            tw.packer.flush(repo)?;
                            Ok((entries, tw.packer))
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(Error::Commit("a tree-writing thread failed".into()))))
                    .collect()
            });
            let mut entries = Vec::new();
            for r in results {
                let (e, packer) = r?;
                entries.extend(e);
                self.packer.absorb(packer);
            }
            roots.namespaces = Some(self.write_level(Level::Namespaces, entries)?.0);
        }
        Ok(roots)
    }

    fn write_groups(&mut self, items: &mut [(ResourceRef, ResourceEntry)]) -> Result<(BlobId, u64)> {
        let mut group_entries = Vec::new();
        for group_run in runs(items, |r| &r.group) {
            let group = group_run[0].0.group.clone();
            let mut kind_entries = Vec::new();
            for kind_run in runs(group_run, |r| &r.kind) {
                let kind = kind_run[0].0.kind.clone();
                let names = kind_run
                    .iter_mut()
                    .map(|(r, e)| (std::mem::take(&mut r.name), Value::Resource(std::mem::replace(e, placeholder()))))
                    .collect();
                let (id, count) = self.write_level(Level::Names, names)?;
                kind_entries.push((kind, Value::Subtree { id, resources: count }));
            }
            let (id, count) = self.write_level(Level::Kinds, kind_entries)?;
            group_entries.push((group, Value::Subtree { id, resources: count }));
        }
        self.write_level(Level::Groups, group_entries)
    }
}

fn placeholder() -> ResourceEntry {
    ResourceEntry { owned: false, source_tag: None, desired: PartRef::default(), server: None }
}

/// Maximal runs of consecutive items with an equal key.
fn runs<K: PartialEq + ?Sized>(
    mut items: &mut [(ResourceRef, ResourceEntry)],
    key: impl Fn(&ResourceRef) -> &K,
) -> Vec<&mut [(ResourceRef, ResourceEntry)]> {
    let mut out = Vec::new();
    while !items.is_empty() {
        let n = items.iter().position(|(r, _)| key(r) != key(&items[0].0)).unwrap_or(items.len());
        let (run, rest) = items.split_at_mut(n);
        out.push(run);
        items = rest;
    }
    out
}

/// The first 32 bytes of `namespace 00 group 00 kind 00 name` (zero-padded) as two big-endian
/// numbers. Kubernetes names, namespaces, groups and kinds never contain a zero byte, so where
/// two prefixes differ they order as [`tree_order`] does; equal prefixes need the full comparison.
pub fn tree_order_prefix(r: &ResourceRef) -> (u128, u128) {
    let mut buf = [0u8; 32];
    let mut n = 0;
    let parts = [r.namespace.as_bytes(), r.group.as_bytes(), r.kind.as_bytes(), r.name.as_bytes()];
    for (i, part) in parts.iter().enumerate() {
        let take = part.len().min(32 - n);
        buf[n..n + take].copy_from_slice(&part[..take]);
        n += take;
        if n == 32 {
            break;
        }
        if i < 3 {
            n += 1; // the zero separator
            if n == 32 {
                break;
            }
        }
    }
    let mut hi = [0u8; 16];
    let mut lo = [0u8; 16];
    hi.copy_from_slice(&buf[..16]);
    lo.copy_from_slice(&buf[16..]);
    (u128::from_be_bytes(hi), u128::from_be_bytes(lo))
}

/// The order of resources in a tree: cluster-scoped first, then by namespace, group, kind,
/// name (bytewise, as node keys are compared).
pub fn tree_order(a: &ResourceRef, b: &ResourceRef) -> std::cmp::Ordering {
    (a.namespace.as_bytes(), a.group.as_bytes(), a.kind.as_bytes(), a.name.as_bytes()).cmp(&(
        b.namespace.as_bytes(),
        b.group.as_bytes(),
        b.kind.as_bytes(),
        b.name.as_bytes(),
    ))
}

/// Reads a node and checks it is of the expected level.
pub fn read_node(repo: &Repository, id: &BlobId, level: Level) -> Result<Arc<Node>> {
    let bytes = repo.read_blob(id)?;
    let node = Node::decode(&bytes).map_err(|e| Error::corrupt("tree node", id.to_hex(), e))?;
    if node.level != level {
        return Err(Error::corrupt("tree node", id.to_hex(), "it is not of the level its parent says"));
    }
    Ok(Arc::new(node))
}

/// Every (key, value) of a level, in key order.
pub fn level_entries(repo: &Repository, root: &BlobId, level: Level) -> Result<Vec<(String, Value)>> {
    let mut out = Vec::new();
    let mut stack = vec![*root];
    let mut depth_guard = 0;
    // Depth-first, children pushed in reverse so that keys come out in order.
    while let Some(id) = stack.pop() {
        depth_guard += 1;
        if depth_guard > 50_000_000 {
            return Err(Error::corrupt("tree node", root.to_hex(), "the tree does not end"));
        }
        let node = read_node(repo, &id, level)?;
        match &node.body {
            NodeBody::Leaf(entries) => out.extend(entries.iter().cloned()),
            NodeBody::Internal(children) => stack.extend(children.iter().rev().map(|c| c.id)),
        }
    }
    Ok(out)
}

/// The value under `key` in a level, descending only the path that can hold it.
pub fn lookup(repo: &Repository, root: &BlobId, level: Level, key: &str) -> Result<Option<Value>> {
    let mut id = *root;
    for _ in 0..64 {
        let node = read_node(repo, &id, level)?;
        match &node.body {
            NodeBody::Leaf(entries) => {
                return Ok(entries
                    .binary_search_by(|(k, _)| k.as_bytes().cmp(key.as_bytes()))
                    .ok()
                    .map(|i| entries[i].1.clone()));
            }
            NodeBody::Internal(children) => {
                let i = children.partition_point(|c| c.first_key.as_bytes() <= key.as_bytes());
                if i == 0 {
                    return Ok(None);
                }
                id = children[i - 1].id;
            }
        }
    }
    Err(Error::corrupt("tree node", root.to_hex(), "the tree is deeper than any kubesnap writes"))
}

/// Calls `f` for every resource under a root of the given level, in key order. `prefix` holds
/// the keys above (namespace, group, kind).
pub fn walk(
    repo: &Repository,
    root: &BlobId,
    level: Level,
    prefix: &mut Vec<String>,
    f: &mut dyn FnMut(ResourceRef, ResourceEntry) -> Result<()>,
) -> Result<()> {
    for (k, v) in level_entries(repo, root, level)? {
        match v {
            Value::Subtree { id, .. } => {
                let child =
                    level.child().ok_or_else(|| Error::corrupt("tree node", id.to_hex(), "subtree below names"))?;
                prefix.push(k);
                walk(repo, &id, child, prefix, f)?;
                prefix.pop();
            }
            Value::Resource(e) => f(make_ref(prefix, k), e)?,
        }
    }
    Ok(())
}

/// One resource's entry, descending only its path.
pub fn lookup_resource(repo: &Repository, roots: &Roots, r: &ResourceRef) -> Result<Option<ResourceEntry>> {
    let (root, first, keys): (Option<&BlobId>, Level, Vec<&str>) = if r.namespace.is_empty() {
        (roots.cluster.as_ref(), Level::Groups, vec![&r.group, &r.kind, &r.name])
    } else {
        (roots.namespaces.as_ref(), Level::Namespaces, vec![&r.namespace, &r.group, &r.kind, &r.name])
    };
    let Some(mut id) = root.copied() else { return Ok(None) };
    let mut level = first;
    for (i, key) in keys.iter().enumerate() {
        match lookup(repo, &id, level, key)? {
            Some(Value::Resource(e)) if i + 1 == keys.len() => return Ok(Some(e)),
            Some(Value::Subtree { id: next, .. }) if i + 1 < keys.len() => {
                id = next;
                level =
                    level.child().ok_or_else(|| Error::corrupt("tree node", next.to_hex(), "subtree below names"))?;
            }
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// What a walk of a tree meets.
pub enum Visit<'a> {
    /// A node, before it is read: answering false skips it and everything below it.
    Node(&'a BlobId),
    /// A resource entry (the answer is ignored).
    Entry(&'a ResourceEntry),
}

/// Walks the nodes and resource entries below `roots`, depth-first, cluster-scoped first.
pub fn visit_tree(repo: &Repository, roots: &Roots, f: &mut dyn FnMut(Visit) -> bool) -> Result<()> {
    fn visit(repo: &Repository, id: &BlobId, level: Level, f: &mut dyn FnMut(Visit) -> bool) -> Result<()> {
        if !f(Visit::Node(id)) {
            return Ok(());
        }
        let node = read_node(repo, id, level)?;
        match &node.body {
            NodeBody::Internal(children) => {
                for c in children {
                    visit(repo, &c.id, level, f)?;
                }
            }
            NodeBody::Leaf(entries) => {
                for (_, v) in entries {
                    match v {
                        Value::Resource(e) => {
                            f(Visit::Entry(e));
                        }
                        Value::Subtree { id, .. } => {
                            let child = level
                                .child()
                                .ok_or_else(|| Error::corrupt("tree node", id.to_hex(), "subtree below names"))?;
                            visit(repo, id, child, f)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
    if let Some(c) = &roots.cluster {
        visit(repo, c, Level::Groups, f)?;
    }
    if let Some(n) = &roots.namespaces {
        visit(repo, n, Level::Namespaces, f)?;
    }
    Ok(())
}

/// Adds to `seen` every tree node and every blob that resource entries below `roots` name.
/// Subtrees whose node is already in `seen` are skipped: snapshots share most of their
/// subtrees, so marking a whole history visits each distinct node once.
pub fn mark_referenced(repo: &Repository, roots: &Roots, seen: &mut std::collections::HashSet<BlobId>) -> Result<()> {
    visit_tree(repo, roots, &mut |v| match v {
        Visit::Node(id) => seen.insert(*id),
        Visit::Entry(e) => {
            for part in std::iter::once(&e.desired).chain(e.server.as_ref()) {
                seen.extend(part.blobs.iter().copied());
            }
            true
        }
    })
}

/// Calls `f` for every resource entry below a root, without building names (for loading the
/// previous snapshot's source tags, where only the entries matter).
pub fn walk_entries(repo: &Repository, roots: &Roots, f: &mut dyn FnMut(&ResourceEntry)) -> Result<()> {
    visit_tree(repo, roots, &mut |v| {
        if let Visit::Entry(e) = v {
            f(e);
        }
        true
    })
}

/// Walks every resource of a snapshot: cluster-scoped first, then namespaced.
pub fn walk_snapshot(
    repo: &Repository,
    roots: &Roots,
    f: &mut dyn FnMut(ResourceRef, ResourceEntry) -> Result<()>,
) -> Result<()> {
    if let Some(c) = &roots.cluster {
        walk(repo, c, Level::Groups, &mut vec![String::new()], f)?;
    }
    if let Some(n) = &roots.namespaces {
        walk(repo, n, Level::Namespaces, &mut Vec::new(), f)?;
    }
    Ok(())
}

/// `prefix` is [namespace, group, kind] (namespace "" for cluster-scoped).
fn make_ref(prefix: &[String], name: String) -> ResourceRef {
    let get = |i: usize| prefix.get(i).cloned().unwrap_or_default();
    ResourceRef { namespace: get(0), group: get(1), kind: get(2), name }
}

/// One resource that differs between two trees.
#[derive(Clone, Debug)]
pub struct Change {
    pub resource: ResourceRef,
    pub old: Option<ResourceEntry>,
    pub new: Option<ResourceEntry>,
}

/// The entries of a level that can differ between two roots: node ids present on both sides
/// are skipped without reading them (equal ids, equal contents).
type Entries = Vec<(String, Value)>;

fn differing_entries(
    repo: &Repository,
    a: Option<&BlobId>,
    b: Option<&BlobId>,
    level: Level,
) -> Result<(Entries, Entries)> {
    let mut sa: Vec<BlobId> = a.into_iter().copied().collect();
    let mut sb: Vec<BlobId> = b.into_iter().copied().collect();
    let mut leaves_a = Vec::new();
    let mut leaves_b = Vec::new();
    for _ in 0..64 {
        let set_a: HashSet<BlobId> = sa.iter().copied().collect();
        let set_b: HashSet<BlobId> = sb.iter().copied().collect();
        sa.retain(|x| !set_b.contains(x));
        sb.retain(|x| !set_a.contains(x));
        if sa.is_empty() && sb.is_empty() {
            break;
        }
        let expand = |ids: Vec<BlobId>, leaves: &mut Vec<(String, Value)>| -> Result<Vec<BlobId>> {
            let mut next = Vec::new();
            for id in ids {
                let node = read_node(repo, &id, level)?;
                match &node.body {
                    NodeBody::Leaf(e) => leaves.extend(e.iter().cloned()),
                    NodeBody::Internal(c) => next.extend(c.iter().map(|c| c.id)),
                }
            }
            Ok(next)
        };
        sa = expand(sa, &mut leaves_a)?;
        sb = expand(sb, &mut leaves_b)?;
    }
    leaves_a.sort_by(|x, y| x.0.cmp(&y.0));
    leaves_b.sort_by(|x, y| x.0.cmp(&y.0));
    Ok((leaves_a, leaves_b))
}

/// The resources that differ between two roots of one level. `same` decides whether two
/// entries of one resource count as equal (desired state only, or all of it).
pub fn diff_level(
    repo: &Repository,
    a: Option<&BlobId>,
    b: Option<&BlobId>,
    level: Level,
    prefix: &mut Vec<String>,
    same: &dyn Fn(&ResourceEntry, &ResourceEntry) -> bool,
    out: &mut Vec<Change>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let (ea, eb) = differing_entries(repo, a, b, level)?;
    let mut ia = ea.into_iter().peekable();
    let mut ib = eb.into_iter().peekable();
    loop {
        let order = match (ia.peek(), ib.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(x), Some(y)) => x.0.cmp(&y.0),
        };
        let (key, va, vb) = match order {
            std::cmp::Ordering::Less => {
                let (k, v) = ia.next().unwrap_or_default_pair();
                (k, Some(v), None)
            }
            std::cmp::Ordering::Greater => {
                let (k, v) = ib.next().unwrap_or_default_pair();
                (k, None, Some(v))
            }
            std::cmp::Ordering::Equal => {
                let (k, x) = ia.next().unwrap_or_default_pair();
                let (_, y) = ib.next().unwrap_or_default_pair();
                (k, Some(x), Some(y))
            }
        };
        match (va, vb) {
            (Some(Value::Resource(x)), Some(Value::Resource(y))) => {
                if !same(&x, &y) {
                    out.push(Change { resource: make_ref(prefix, key), old: Some(x), new: Some(y) });
                }
            }
            (Some(Value::Resource(x)), None) => {
                out.push(Change { resource: make_ref(prefix, key), old: Some(x), new: None })
            }
            (None, Some(Value::Resource(y))) => {
                out.push(Change { resource: make_ref(prefix, key), old: None, new: Some(y) })
            }
            (va, vb) => {
                let sub = |v: &Option<Value>| match v {
                    Some(Value::Subtree { id, .. }) => Some(*id),
                    _ => None,
                };
                let (sa, sb) = (sub(&va), sub(&vb));
                let child = level.child().ok_or_else(|| Error::corrupt("tree", key.clone(), "subtree below names"))?;
                prefix.push(key);
                diff_level(repo, sa.as_ref(), sb.as_ref(), child, prefix, same, out)?;
                prefix.pop();
            }
        }
    }
    Ok(())
}

trait PairExt {
    fn unwrap_or_default_pair(self) -> (String, Value);
}

impl PairExt for Option<(String, Value)> {
    fn unwrap_or_default_pair(self) -> (String, Value) {
        // Only called after `peek` returned Some.
        self.unwrap_or_else(|| (String::new(), Value::Subtree { id: BlobId::default(), resources: 0 }))
    }
}

/// Every resource that differs between two snapshots' trees.
pub fn diff_snapshots(
    repo: &Repository,
    a: &Roots,
    b: &Roots,
    same: &dyn Fn(&ResourceEntry, &ResourceEntry) -> bool,
) -> Result<Vec<Change>> {
    let mut out = Vec::new();
    diff_level(repo, a.cluster.as_ref(), b.cluster.as_ref(), Level::Groups, &mut vec![String::new()], same, &mut out)?;
    diff_level(repo, a.namespaces.as_ref(), b.namespaces.as_ref(), Level::Namespaces, &mut Vec::new(), same, &mut out)?;
    Ok(out)
}

/// Equal desired state.
pub fn same_desired(a: &ResourceEntry, b: &ResourceEntry) -> bool {
    a.desired == b.desired
}

/// Equal in both parts: desired state and server-owned fields. (Source tags and the owned
/// flag are not contents: the same object from a dump folder and from the live cluster is
/// the same.)
pub fn same_all(a: &ResourceEntry, b: &ResourceEntry) -> bool {
    a.desired == b.desired && a.server == b.server
}

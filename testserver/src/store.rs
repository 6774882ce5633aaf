//! The object store: an in-memory multi-version map, like etcd under kube-apiserver.
//!
//! Every write gets the next value of one global counter, the resourceVersion. Each key
//! (group, resource, namespace, name) keeps its versions (tombstones included) until they are
//! compacted away, so a list can be served at any resourceVersion not older than the compaction
//! point: this is how paginated lists stay consistent while objects are written (a continue
//! token names the snapshot resourceVersion and the last key), and how old tokens and watches
//! get 410 Expired once their snapshot was compacted, exactly as with etcd.
//!
//! Every change is also appended to a change log, which watches read from; a `tokio::sync::watch`
//! channel carrying the newest resourceVersion wakes them up.
//!
//! The store knows nothing of Kubernetes semantics besides `metadata.resourceVersion`, which it
//! sets on every object it writes. It never holds its lock across an await point.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

/// (group, resource): `("apps", "deployments")`, `("", "pods")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    /// API group, `""` for core.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

impl GroupResource {
    /// From its parts.
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource { group: group.to_string(), resource: resource.to_string() }
    }
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::status::qualified(&self.group, &self.resource))
    }
}

/// (namespace, name); the namespace is `""` for cluster-scoped objects.
pub type ObjectKey = (String, String);

/// The type of a change, as watch events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted.
    Deleted,
}

impl ChangeType {
    /// `ADDED`, `MODIFIED`, `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One change, as the change log keeps it.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// The resource.
    pub gr: GroupResource,
    /// The object's key.
    pub key: ObjectKey,
    /// Created, updated or deleted.
    pub change: ChangeType,
    /// The object after the change (for a delete: its last state, with the delete's resourceVersion).
    pub object: Arc<Value>,
    /// The object before the change, if there was one.
    pub previous: Option<Arc<Value>>,
}

/// The versions of one key, oldest first: (resourceVersion, the object or `None` for a delete).
type Versions = Vec<(u64, Option<Arc<Value>>)>;

#[derive(Debug, Default)]
struct Inner {
    rv: u64,
    compacted: u64,
    data: HashMap<GroupResource, BTreeMap<ObjectKey, Versions>>,
    log: VecDeque<Change>,
}

/// The store. Share it behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    inner: Mutex<Inner>,
    notify: tokio::sync::watch::Sender<u64>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

/// The key of the newest visible version at `rv`.
fn visible_at(versions: &[(u64, Option<Arc<Value>>)], rv: u64) -> Option<&Arc<Value>> {
    versions.iter().rev().find(|(v, _)| *v <= rv).and_then(|(_, o)| o.as_ref())
}

fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

/// A read-modify-write transaction: holds the store's lock; watchers are woken when it ends.
pub struct Txn<'a> {
    inner: MutexGuard<'a, Inner>,
    changed: bool,
}

impl Txn<'_> {
    /// The newest version of an object.
    pub fn get(&self, gr: &GroupResource, key: &ObjectKey) -> Option<Arc<Value>> {
        self.inner.data.get(gr)?.get(key).and_then(|v| v.last()).and_then(|(_, o)| o.clone())
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.rv
    }

    /// Every newest object of a resource (in one namespace, or all), in key order.
    pub fn list_latest(&self, gr: &GroupResource, namespace: Option<&str>) -> Vec<(ObjectKey, Arc<Value>)> {
        let Some(map) = self.inner.data.get(gr) else { return Vec::new() };
        map.iter()
            .filter(|(k, _)| namespace.is_none_or(|ns| k.0 == ns))
            .filter_map(|(k, v)| v.last().and_then(|(_, o)| o.clone()).map(|o| (k.clone(), o)))
            .collect()
    }

    /// Writes an object (created when absent), at the next resourceVersion, which is set in its
    /// `metadata.resourceVersion`. Returns the stored object.
    pub fn put(&mut self, gr: &GroupResource, key: &ObjectKey, mut obj: Value) -> Arc<Value> {
        let inner = &mut *self.inner;
        inner.rv += 1;
        let rv = inner.rv;
        set_rv(&mut obj, rv);
        let obj = Arc::new(obj);
        let versions = inner.data.entry(gr.clone()).or_default().entry(key.clone()).or_default();
        let previous = versions.last().and_then(|(_, o)| o.clone());
        versions.push((rv, Some(obj.clone())));
        let change = if previous.is_some() { ChangeType::Modified } else { ChangeType::Added };
        inner.log.push_back(Change { rv, gr: gr.clone(), key: key.clone(), change, object: obj.clone(), previous });
        self.changed = true;
        obj
    }

    /// Deletes an object; returns its last state (with the delete's resourceVersion).
    pub fn delete(&mut self, gr: &GroupResource, key: &ObjectKey) -> Option<Arc<Value>> {
        let inner = &mut *self.inner;
        let versions = inner.data.get_mut(gr)?.get_mut(key)?;
        let previous = versions.last().and_then(|(_, o)| o.clone())?;
        inner.rv += 1;
        let rv = inner.rv;
        versions.push((rv, None));
        let mut last = (*previous).clone();
        set_rv(&mut last, rv);
        let last = Arc::new(last);
        inner.log.push_back(Change {
            rv,
            gr: gr.clone(),
            key: key.clone(),
            change: ChangeType::Deleted,
            object: last.clone(),
            previous: Some(previous),
        });
        self.changed = true;
        Some(last)
    }

    /// Stores an object as given (its own `resourceVersion` kept, used as its version when it is
    /// a number), without a change event: for loading fixtures before serving.
    pub fn load(&mut self, gr: &GroupResource, key: &ObjectKey, obj: Value) {
        let inner = &mut *self.inner;
        let given =
            obj.pointer("/metadata/resourceVersion").and_then(Value::as_str).and_then(|s| s.parse::<u64>().ok());
        let rv = match given {
            Some(rv) if rv > inner.compacted => rv,
            _ => {
                inner.rv += 1;
                inner.rv
            }
        };
        let mut obj = obj;
        if given.is_none() {
            set_rv(&mut obj, rv);
        }
        inner.rv = inner.rv.max(rv);
        inner.data.entry(gr.clone()).or_default().insert(key.clone(), vec![(rv, Some(Arc::new(obj)))]);
        self.changed = true;
    }
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The resourceVersion the page was read at.
    pub rv: u64,
    /// The visible objects after the start key, in key order.
    pub items: Vec<(ObjectKey, Arc<Value>)>,
}

/// Why a read at an old resourceVersion failed: it was compacted (the oldest readable one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compacted(pub u64);

impl Store {
    /// An empty store at resourceVersion 0.
    pub fn new() -> Self {
        let (notify, _) = tokio::sync::watch::channel(0);
        Store { inner: Mutex::new(Inner::default()), notify }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (every write is one push).
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs `f` under the store's lock; watchers are woken afterwards if it wrote.
    pub fn transaction<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        let (result, changed, rv) = {
            let mut txn = Txn { inner: self.lock(), changed: false };
            let r = f(&mut txn);
            (r, txn.changed, txn.inner.rv)
        };
        if changed {
            self.notify.send_replace(rv);
        }
        result
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// The oldest resourceVersion that can still be read (the compaction point).
    pub fn compacted(&self) -> u64 {
        self.lock().compacted
    }

    /// The newest version of an object.
    pub fn get(&self, gr: &GroupResource, key: &ObjectKey) -> Option<Arc<Value>> {
        self.transaction(|t| t.get(gr, key))
    }

    /// The objects visible at `rv` (the current resourceVersion when `None`), in one namespace
    /// or all, after `after` (exclusive), in key order.
    ///
    /// # Errors
    /// [`Compacted`] when `rv` is older than the compaction point.
    pub fn snapshot(
        &self,
        gr: &GroupResource,
        namespace: Option<&str>,
        rv: Option<u64>,
        after: Option<&ObjectKey>,
    ) -> Result<Snapshot, Compacted> {
        let inner = self.lock();
        let rv = rv.unwrap_or(inner.rv);
        if rv < inner.compacted {
            return Err(Compacted(inner.compacted));
        }
        let mut items = Vec::new();
        if let Some(map) = inner.data.get(gr) {
            let start = match (after, namespace) {
                (Some(k), _) => std::ops::Bound::Excluded(k.clone()),
                (None, Some(ns)) => std::ops::Bound::Included((ns.to_string(), String::new())),
                (None, None) => std::ops::Bound::Unbounded,
            };
            for (k, versions) in map.range((start, std::ops::Bound::Unbounded)) {
                if let Some(ns) = namespace {
                    if k.0 != ns {
                        if k.0.as_str() > ns {
                            break;
                        }
                        continue;
                    }
                }
                if let Some(obj) = visible_at(versions, rv) {
                    items.push((k.clone(), obj.clone()));
                }
            }
        }
        Ok(Snapshot { rv, items })
    }

    /// The changes of one resource after `after_rv`, in order, and the resourceVersion they
    /// are complete up to (the current one).
    ///
    /// # Errors
    /// [`Compacted`] when changes after `after_rv` were compacted away.
    pub fn changes_since(&self, gr: &GroupResource, after_rv: u64) -> Result<(Vec<Change>, u64), Compacted> {
        let inner = self.lock();
        if after_rv < inner.compacted {
            return Err(Compacted(inner.compacted));
        }
        let start = inner.log.partition_point(|c| c.rv <= after_rv);
        Ok((inner.log.range(start..).filter(|c| &c.gr == gr).cloned().collect(), inner.rv.max(after_rv)))
    }

    /// Forgets every version older than `rv` that a newer one hides, and the change log up to
    /// `rv`, like etcd's compaction. Reads at older resourceVersions then fail with 410.
    pub fn compact(&self, rv: u64) {
        let mut inner = self.lock();
        let rv = rv.min(inner.rv);
        if rv <= inner.compacted {
            return;
        }
        inner.compacted = rv;
        for map in inner.data.values_mut() {
            map.retain(|_, versions| {
                let keep_from = versions.iter().rposition(|(v, _)| *v <= rv).unwrap_or(0);
                versions.drain(..keep_from);
                if versions.first().is_some_and(|(v, o)| *v <= rv && o.is_none()) {
                    versions.remove(0);
                }
                !versions.is_empty()
            });
        }
        while inner.log.front().is_some_and(|c| c.rv <= rv) {
            inner.log.pop_front();
        }
    }

    /// A receiver that changes whenever the resourceVersion moves.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// Every resource that holds objects now.
    pub fn resources(&self) -> Vec<GroupResource> {
        let inner = self.lock();
        let mut v: Vec<GroupResource> = inner
            .data
            .iter()
            .filter(|(_, m)| m.values().any(|vs| vs.last().is_some_and(|(_, o)| o.is_some())))
            .map(|(gr, _)| gr.clone())
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(ns: &str, name: &str) -> ObjectKey {
        (ns.to_string(), name.to_string())
    }

    fn obj(name: &str) -> Value {
        json!({"metadata": {"name": name}})
    }

    #[test]
    fn snapshots_see_the_past() {
        let s = Store::new();
        let gr = GroupResource::new("", "configmaps");
        s.transaction(|t| {
            t.put(&gr, &key("a", "1"), obj("1"));
            t.put(&gr, &key("a", "2"), obj("2"));
        });
        let rv = s.resource_version();
        s.transaction(|t| {
            t.put(&gr, &key("a", "0"), obj("0"));
            t.delete(&gr, &key("a", "2"));
            t.put(&gr, &key("b", "3"), obj("3"));
        });
        let names = |snap: Snapshot| snap.items.iter().map(|(k, _)| k.1.clone()).collect::<Vec<_>>();
        assert_eq!(s.snapshot(&gr, None, Some(rv), None).map(names), Ok(vec!["1".to_string(), "2".to_string()]));
        assert_eq!(
            s.snapshot(&gr, None, None, None).map(names),
            Ok(vec!["0".to_string(), "1".to_string(), "3".to_string()])
        );
        assert_eq!(s.snapshot(&gr, Some("a"), None, Some(&key("a", "0"))).map(names), Ok(vec!["1".to_string()]));
        assert_eq!(s.snapshot(&gr, Some("b"), None, None).map(names), Ok(vec!["3".to_string()]));
        let changes = s.changes_since(&gr, rv).map(|(c, _)| c).unwrap_or_default();
        assert_eq!(
            changes.iter().map(|c| c.change).collect::<Vec<_>>(),
            [ChangeType::Added, ChangeType::Deleted, ChangeType::Added]
        );
        assert_eq!(changes[1].object["metadata"]["resourceVersion"], json!((rv + 2).to_string()));

        s.compact(rv + 1);
        assert_eq!(s.snapshot(&gr, None, Some(rv), None).map(|_| ()), Err(Compacted(rv + 1)));
        assert!(s.changes_since(&gr, rv).is_err());
        assert_eq!(s.changes_since(&gr, rv + 1).map(|(c, upto)| (c.len(), upto)), Ok((2, rv + 3)));
        // The newest state survives compaction.
        assert_eq!(
            s.snapshot(&gr, None, None, None).map(names),
            Ok(vec!["0".to_string(), "1".to_string(), "3".to_string()])
        );
        s.compact(s.resource_version());
        assert_eq!(
            s.snapshot(&gr, None, None, None).map(names),
            Ok(vec!["0".to_string(), "1".to_string(), "3".to_string()])
        );
    }

    #[test]
    fn loads_keep_their_resource_version() {
        let s = Store::new();
        let gr = GroupResource::new("", "configmaps");
        s.transaction(|t| {
            t.load(&gr, &key("a", "x"), json!({"metadata": {"name": "x", "resourceVersion": "500"}}));
            t.load(&gr, &key("a", "y"), json!({"metadata": {"name": "y"}}));
        });
        assert_eq!(s.resource_version(), 501);
        assert_eq!(s.get(&gr, &key("a", "x")).map(|o| o["metadata"]["resourceVersion"].clone()), Some(json!("500")));
        assert_eq!(s.get(&gr, &key("a", "y")).map(|o| o["metadata"]["resourceVersion"].clone()), Some(json!("501")));
    }
}

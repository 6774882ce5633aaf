//! Tree nodes: the Merkle hierarchy of a snapshot.
//!
//! A snapshot has two roots: cluster-scoped resources (group / kind / name) and namespaced ones
//! (namespace / group / kind / name). Each level is a sorted sequence of keyed entries stored as a
//! content-defined B-tree ("prolly tree"): node boundaries fall after entries whose keyed hash is
//! below a threshold, so the same set of entries always gives the same nodes and one change
//! rewrites only the nodes on its path. Equal subtrees have equal ids, which `diff` skips.
//!
//! ```text
//! node     = version u8 (=1) || level u8 || kind u8 (1 leaf, 2 internal) || count varint || entries
//! leaf     = key || tag u8 || value          (tag 1: subtree, 2: resource)
//! subtree  = node id[16] || resources varint
//! resource = flags u8 (bit 0 owned, bit 1 has server part, bit 2 has source tag)
//!            || [source tag[8]] || part(desired) || [part(server)]
//! part     = size varint || blob count varint || blob id[16]*count
//! internal = key (first key below the child) || child id[16] || resources varint
//! key      = length varint || UTF-8 bytes; keys strictly ascending (bytewise) within a node
//! ```

use super::wire::{put_bytes, put_varint, Reader};
use super::{BlobId, FormatError};

/// Which level of the hierarchy a node belongs to (bound into the node, so that a node of one
/// level can never be read as another).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Level {
    /// Keys are namespace names; values are subtrees of level `Groups`.
    Namespaces = 1,
    /// Keys are API groups (`""` for the core API); values are subtrees of level `Kinds`.
    Groups = 2,
    /// Keys are kinds; values are subtrees of level `Names`.
    Kinds = 3,
    /// Keys are resource names; values are resources.
    Names = 4,
}

impl Level {
    pub fn from_u8(b: u8) -> Option<Level> {
        Some(match b {
            1 => Level::Namespaces,
            2 => Level::Groups,
            3 => Level::Kinds,
            4 => Level::Names,
            _ => return None,
        })
    }

    /// The level below this one's subtrees.
    pub fn child(self) -> Option<Level> {
        match self {
            Level::Namespaces => Some(Level::Groups),
            Level::Groups => Some(Level::Kinds),
            Level::Kinds => Some(Level::Names),
            Level::Names => None,
        }
    }
}

/// The blobs that hold one part (desired state or server-owned fields) of a resource: one blob,
/// or the chunks of a large part in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct PartRef {
    /// Uncompressed size of the whole part.
    pub size: u64,
    /// Almost always one blob: kept inline, so a million entries are not a million allocations.
    pub blobs: smallvec::SmallVec<[BlobId; 1]>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ResourceEntry {
    /// The object has an ownerReference with `controller: true`.
    pub owned: bool,
    /// A keyed hash of the object's identity, `metadata.uid` and `metadata.resourceVersion` as
    /// read from a live cluster (see `format-spec/06-trees.md`): the next snapshot reuses this
    /// entry, without reading the object again, when the tag is unchanged.
    pub source_tag: Option<[u8; 8]>,
    pub desired: PartRef,
    pub server: Option<PartRef>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Subtree { id: BlobId, resources: u64 },
    Resource(ResourceEntry),
}

impl Value {
    pub fn resources(&self) -> u64 {
        match self {
            Value::Subtree { resources, .. } => *resources,
            Value::Resource(_) => 1,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Child {
    pub first_key: String,
    pub id: BlobId,
    pub resources: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeBody {
    Leaf(Vec<(String, Value)>),
    Internal(Vec<Child>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub level: Level,
    pub body: NodeBody,
}

const TAG_SUBTREE: u8 = 1;
const TAG_RESOURCE: u8 = 2;

fn put_part(out: &mut Vec<u8>, p: &PartRef) {
    put_varint(out, p.size);
    put_varint(out, p.blobs.len() as u64);
    for b in &p.blobs {
        out.extend_from_slice(&b.0);
    }
}

fn get_part(r: &mut Reader<'_>) -> Result<PartRef, FormatError> {
    let size = r.varint()?;
    let n = r.count(16)?;
    if n == 0 {
        return Err(r.err("a part needs at least one blob"));
    }
    let mut blobs = smallvec::SmallVec::with_capacity(n);
    for _ in 0..n {
        blobs.push(BlobId(r.id16()?));
    }
    Ok(PartRef { size, blobs })
}

impl Node {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.push(1);
        out.push(self.level as u8);
        match &self.body {
            NodeBody::Leaf(entries) => {
                out.push(1);
                put_varint(&mut out, entries.len() as u64);
                for (k, v) in entries {
                    put_bytes(&mut out, k.as_bytes());
                    match v {
                        Value::Subtree { id, resources } => {
                            out.push(TAG_SUBTREE);
                            out.extend_from_slice(&id.0);
                            put_varint(&mut out, *resources);
                        }
                        Value::Resource(e) => {
                            out.push(TAG_RESOURCE);
                            out.push(
                                u8::from(e.owned)
                                    | (u8::from(e.server.is_some()) << 1)
                                    | (u8::from(e.source_tag.is_some()) << 2),
                            );
                            if let Some(t) = &e.source_tag {
                                out.extend_from_slice(t);
                            }
                            put_part(&mut out, &e.desired);
                            if let Some(s) = &e.server {
                                put_part(&mut out, s);
                            }
                        }
                    }
                }
            }
            NodeBody::Internal(children) => {
                out.push(2);
                put_varint(&mut out, children.len() as u64);
                for c in children {
                    put_bytes(&mut out, c.first_key.as_bytes());
                    out.extend_from_slice(&c.id.0);
                    put_varint(&mut out, c.resources);
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Node, FormatError> {
        let mut r = Reader::new(bytes, "tree node");
        let version = r.u8()?;
        if version != 1 {
            return Err(FormatError::UnsupportedVersion { found: version, supported: 1 });
        }
        let level = Level::from_u8(r.u8()?).ok_or_else(|| r.err("unknown level"))?;
        let kind = r.u8()?;
        let mut last: Option<String> = None;
        let mut check_key = |r: &Reader<'_>, k: &str| -> Result<(), FormatError> {
            if let Some(prev) = &last {
                if prev.as_bytes() >= k.as_bytes() {
                    return Err(r.err("keys are not strictly ascending"));
                }
            }
            last = Some(k.to_owned());
            Ok(())
        };
        let body = match kind {
            1 => {
                let n = r.count(3)?;
                let mut entries = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = r.string()?;
                    check_key(&r, &key)?;
                    let value = match (r.u8()?, level) {
                        (TAG_SUBTREE, Level::Namespaces | Level::Groups | Level::Kinds) => {
                            Value::Subtree { id: BlobId(r.id16()?), resources: r.varint()? }
                        }
                        (TAG_RESOURCE, Level::Names) => {
                            let flags = r.u8()?;
                            if flags & !7 != 0 {
                                return Err(r.err("unknown resource flags"));
                            }
                            let source_tag = if flags & 4 != 0 {
                                let mut t = [0u8; 8];
                                t.copy_from_slice(r.bytes(8)?);
                                Some(t)
                            } else {
                                None
                            };
                            let desired = get_part(&mut r)?;
                            let server = if flags & 2 != 0 { Some(get_part(&mut r)?) } else { None };
                            Value::Resource(ResourceEntry { owned: flags & 1 != 0, source_tag, desired, server })
                        }
                        _ => return Err(r.err("value type does not belong at this level")),
                    };
                    entries.push((key, value));
                }
                NodeBody::Leaf(entries)
            }
            2 => {
                let n = r.count(18)?;
                if n == 0 {
                    return Err(r.err("an internal node needs children"));
                }
                let mut children = Vec::with_capacity(n);
                for _ in 0..n {
                    let first_key = r.string()?;
                    check_key(&r, &first_key)?;
                    children.push(Child { first_key, id: BlobId(r.id16()?), resources: r.varint()? });
                }
                NodeBody::Internal(children)
            }
            _ => return Err(r.err("unknown node kind")),
        };
        r.finish()?;
        Ok(Node { level, body })
    }
}

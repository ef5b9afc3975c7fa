//! A persistent hash array mapped trie (HAMT) from byte-string keys to values, in the CHAMP layout.
//!
//! This is the data structure behind ringstate's state cache: every committed append produces a new
//! version of the map that shares all unchanged nodes with the previous one, so readers can hold an
//! old version for as long as they like while writers move on. It knows nothing of JavaScript; the
//! Node-API binding in `crates/ringstate-node` only converts values.
//!
//! See [`HamtMap`] for the complexity table, the invariants and examples, [`hash`] for the fixed hash
//! function, and [`HamtMap::to_bytes`] / [`HamtMap::apply_changes`] for the two byte formats.

use std::fmt;
use std::mem;
use std::sync::Arc;

/// Bits of the hash consumed per trie level.
const BITS: u32 = 5;
const MASK: u32 = (1 << BITS) - 1;
/// Width of the hash. A key's path uses levels at shifts 0, 5, ..., 30 (the last level sees only
/// the top two bits); below that, keys with equal hashes share one collision node.
const HASH_BITS: u32 = 32;

/// The signature of a key hash function. The default is [`hash`]; tests substitute a constant to
/// force collisions.
pub type HashFn = fn(&[u8]) -> u32;

/// The fixed hash of a key: 32-bit FNV-1a over the key bytes, followed by the MurmurHash3 `fmix32`
/// finaliser (FNV-1a alone spreads keys like `user:1`, `user:2` poorly in the low bits).
///
/// It is fixed and documented because the pure-TypeScript twin (`ts/cache/hamt.ts`) computes the
/// same function over the UTF-8 bytes of its string keys, so both give the same trie shape and the
/// same iteration order. It is not keyed: callers that take keys from untrusted sources should know
/// that colliding keys degrade to a linear scan of one collision node.
///
/// ```
/// assert_eq!(hamt::hash(b"user:1"), 0x6924_40ef);
/// assert_ne!(hamt::hash(b"user:1"), hamt::hash(b"user:2"));
/// ```
pub fn hash(key: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in key {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
thread_local! {
    /// Nodes alive on this thread; the `drops` tests check it returns to its start value.
    static LIVE_NODES: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

#[inline]
fn node_created() {
    #[cfg(test)]
    LIVE_NODES.with(|n| n.set(n.get() + 1));
}

struct Entry<V> {
    key: Arc<[u8]>,
    value: V,
}

impl<V: Clone> Clone for Entry<V> {
    fn clone(&self) -> Self {
        Entry { key: Arc::clone(&self.key), value: self.value.clone() }
    }
}

enum Node<V> {
    /// `datamap` marks slots holding an entry inline, `nodemap` slots holding a child node; the
    /// two never overlap. `data` and `nodes` are in slot order.
    Branch { datamap: u32, nodemap: u32, data: Vec<Entry<V>>, nodes: Vec<Arc<Node<V>>> },
    /// Two or more entries whose keys hash to the same 32 bits, sorted by key bytes.
    Collision { hash: u32, entries: Vec<Entry<V>> },
}

impl<V> Node<V> {
    fn empty() -> Self {
        node_created();
        Node::Branch { datamap: 0, nodemap: 0, data: Vec::new(), nodes: Vec::new() }
    }
}

impl<V: Clone> Clone for Node<V> {
    fn clone(&self) -> Self {
        node_created();
        match self {
            Node::Branch { datamap, nodemap, data, nodes } => Node::Branch {
                datamap: *datamap,
                nodemap: *nodemap,
                data: data.clone(),
                nodes: nodes.clone(),
            },
            Node::Collision { hash, entries } => Node::Collision { hash: *hash, entries: entries.clone() },
        }
    }
}

#[cfg(test)]
impl<V> Drop for Node<V> {
    fn drop(&mut self) {
        LIVE_NODES.with(|n| n.set(n.get() - 1));
    }
}

#[inline]
fn slot(hash: u32, shift: u32) -> u32 {
    1 << ((hash >> shift) & MASK)
}

#[inline]
fn index(map: u32, bit: u32) -> usize {
    (map & (bit - 1)).count_ones() as usize
}

/// A node holding exactly two entries whose hashes agree below `shift`.
fn merge<V>(a: Entry<V>, ha: u32, b: Entry<V>, hb: u32, shift: u32) -> Node<V> {
    node_created();
    if shift >= HASH_BITS {
        let entries = if a.key < b.key { vec![a, b] } else { vec![b, a] };
        return Node::Collision { hash: ha, entries };
    }
    let (bit_a, bit_b) = (slot(ha, shift), slot(hb, shift));
    if bit_a != bit_b {
        let data = if bit_a < bit_b { vec![a, b] } else { vec![b, a] };
        Node::Branch { datamap: bit_a | bit_b, nodemap: 0, data, nodes: Vec::new() }
    } else {
        let child = Arc::new(merge(a, ha, b, hb, shift + BITS));
        Node::Branch { datamap: 0, nodemap: bit_a, data: Vec::new(), nodes: vec![child] }
    }
}

fn insert<V: Clone>(node: &mut Node<V>, key: &[u8], value: V, hash: u32, shift: u32, hasher: HashFn) -> Option<V> {
    match node {
        Node::Branch { datamap, nodemap, data, nodes } => {
            let bit = slot(hash, shift);
            if *datamap & bit != 0 {
                let i = index(*datamap, bit);
                if *data[i].key == *key {
                    return Some(mem::replace(&mut data[i].value, value));
                }
                let existing = data.remove(i);
                *datamap ^= bit;
                let existing_hash = hasher(&existing.key);
                let fresh = Entry { key: Arc::from(key), value };
                let child = merge(existing, existing_hash, fresh, hash, shift + BITS);
                let j = index(*nodemap, bit);
                *nodemap |= bit;
                nodes.insert(j, Arc::new(child));
                None
            } else if *nodemap & bit != 0 {
                let j = index(*nodemap, bit);
                insert(Arc::make_mut(&mut nodes[j]), key, value, hash, shift + BITS, hasher)
            } else {
                let i = index(*datamap, bit);
                *datamap |= bit;
                data.insert(i, Entry { key: Arc::from(key), value });
                None
            }
        }
        Node::Collision { entries, .. } => match entries.binary_search_by(|e| (*e.key).cmp(key)) {
            Ok(i) => Some(mem::replace(&mut entries[i].value, value)),
            Err(i) => {
                entries.insert(i, Entry { key: Arc::from(key), value });
                None
            }
        },
    }
}

/// Removes `key` (known to be present) and keeps the shape canonical: a child left holding a single
/// entry and no children is replaced by that entry, inline in this node.
fn remove<V: Clone>(node: &mut Node<V>, key: &[u8], hash: u32, shift: u32) -> Option<V> {
    match node {
        Node::Branch { datamap, nodemap, data, nodes } => {
            let bit = slot(hash, shift);
            if *datamap & bit != 0 {
                let i = index(*datamap, bit);
                if *data[i].key != *key {
                    return None;
                }
                *datamap ^= bit;
                Some(data.remove(i).value)
            } else if *nodemap & bit != 0 {
                let j = index(*nodemap, bit);
                let child = Arc::make_mut(&mut nodes[j]);
                let removed = remove(child, key, hash, shift + BITS)?;
                if let Some(single) = take_single(child) {
                    nodes.remove(j);
                    *nodemap ^= bit;
                    data.insert(index(*datamap, bit), single);
                    *datamap |= bit;
                }
                Some(removed)
            } else {
                None
            }
        }
        Node::Collision { entries, .. } => {
            let i = entries.binary_search_by(|e| (*e.key).cmp(key)).ok()?;
            Some(entries.remove(i).value)
        }
    }
}

/// The node's only entry, taken out, when the node holds exactly one entry and no children.
fn take_single<V>(node: &mut Node<V>) -> Option<Entry<V>> {
    match node {
        Node::Branch { nodemap: 0, data, .. } if data.len() == 1 => data.pop(),
        Node::Collision { entries, .. } if entries.len() == 1 => entries.pop(),
        _ => None,
    }
}

/// A persistent (immutable, structurally shared) map from byte-string keys to values of type `V`.
///
/// Cloning a map is O(1): it copies one `Arc` and shares every node. Editing a map through `&mut self`
/// changes only that version: a node is edited in place when this version is its only owner
/// (`Arc::make_mut`) and copied first when another version shares it. That makes `&mut self`
/// methods the *transient* (batch) mode: after the first edit copies a path, later edits of a batch
/// touch the copies in place, and a map built from scratch never copies at all. The `with_*`
/// methods are the functional style: they return a new version and leave `self` alone.
///
/// | operation                       | time                          | notes                              |
/// |---------------------------------|-------------------------------|------------------------------------|
/// | `clone`                         | O(1)                          | one atomic increment               |
/// | `len`, `is_empty`               | O(1)                          | stored                             |
/// | `get`, `contains_key`           | O(log32 n), at most 8 levels  | plus a key compare                 |
/// | `insert`, `remove`              | O(log32 n)                    | copies at most one path if shared  |
/// | `with_inserted`, `with_removed` | O(log32 n)                    | copies one path                    |
/// | `apply_changes`                 | O(k log32 n) for k changes    | all or nothing                     |
/// | `iter`                          | O(n) total                    | deterministic order, see below     |
/// | `to_bytes`, `from_bytes`        | O(n)                          |                                    |
///
/// Invariants (checked by the tests after every operation):
/// - A key's path is fixed by its hash: 5 bits per level from the lowest bits up, 7 levels cover
///   all 32 bits; keys with equal hashes share a collision node at depth 7, sorted by key bytes.
/// - Canonical shape (CHAMP): every node except the root holds at least two entries in its
///   subtree; a collision node holds at least two entries. So one set of keys has exactly one
///   shape whatever the history of inserts and removes, and iteration order depends only on the
///   set: per node, inline entries in slot order, then children in slot order.
/// - `len` equals the number of entries reachable from the root.
///
/// ```
/// use hamt::HamtMap;
/// let mut v1: HamtMap<u32> = HamtMap::new();
/// v1.insert(b"order:1", 10);
/// let mut v2 = v1.clone(); // O(1) version handle
/// v2.insert(b"order:2", 20);
/// assert_eq!(v1.len(), 1); // the old version is unchanged
/// assert_eq!(v2.get(b"order:2"), Some(&20));
/// ```
pub struct HamtMap<V> {
    root: Arc<Node<V>>,
    len: usize,
    hasher: HashFn,
}

impl<V> Clone for HamtMap<V> {
    fn clone(&self) -> Self {
        HamtMap { root: Arc::clone(&self.root), len: self.len, hasher: self.hasher }
    }
}

impl<V: Clone> Default for HamtMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V: Clone + fmt::Debug> fmt::Debug for HamtMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (String::from_utf8_lossy(k), v))).finish()
    }
}

impl<V: Clone> HamtMap<V> {
    /// An empty map using the fixed [`hash`].
    ///
    /// ```
    /// let map: hamt::HamtMap<Vec<u8>> = hamt::HamtMap::new();
    /// assert!(map.is_empty());
    /// ```
    pub fn new() -> Self {
        Self::with_hasher(hash)
    }

    /// An empty map using `hasher` instead of [`hash`]; maps derived from it keep it. Meant for
    /// tests that force collisions; the byte formats do not record the hasher.
    ///
    /// ```
    /// let mut map = hamt::HamtMap::with_hasher(|_| 7);
    /// map.insert(b"a", 1);
    /// map.insert(b"b", 2);
    /// assert_eq!(map.get(b"b"), Some(&2));
    /// ```
    pub fn with_hasher(hasher: HashFn) -> Self {
        HamtMap { root: Arc::new(Node::empty()), len: 0, hasher }
    }

    /// Number of entries, O(1).
    ///
    /// ```
    /// let mut map = hamt::HamtMap::new();
    /// map.insert(b"k", ());
    /// assert_eq!(map.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map has no entries.
    ///
    /// ```
    /// assert!(hamt::HamtMap::<()>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value stored under `key`.
    ///
    /// ```
    /// let mut map = hamt::HamtMap::new();
    /// map.insert(b"k", 1);
    /// assert_eq!(map.get(b"k"), Some(&1));
    /// assert_eq!(map.get(b"x"), None);
    /// ```
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        let hash = (self.hasher)(key);
        let mut node: &Node<V> = &self.root;
        let mut shift = 0;
        loop {
            match node {
                Node::Branch { datamap, nodemap, data, nodes } => {
                    let bit = slot(hash, shift);
                    if datamap & bit != 0 {
                        let entry = &data[index(*datamap, bit)];
                        return if *entry.key == *key { Some(&entry.value) } else { None };
                    }
                    if nodemap & bit == 0 {
                        return None;
                    }
                    node = &nodes[index(*nodemap, bit)];
                    shift += BITS;
                }
                Node::Collision { entries, .. } => {
                    return entries.binary_search_by(|e| (*e.key).cmp(key)).ok().map(|i| &entries[i].value);
                }
            }
        }
    }

    /// Whether `key` is present.
    ///
    /// ```
    /// let mut map = hamt::HamtMap::new();
    /// map.insert(b"k", 1);
    /// assert!(map.contains_key(b"k"));
    /// ```
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Stores `value` under `key` in this version and returns the value it replaced. Other
    /// versions sharing nodes with this one are not affected.
    ///
    /// ```
    /// let mut map = hamt::HamtMap::new();
    /// assert_eq!(map.insert(b"k", 1), None);
    /// assert_eq!(map.insert(b"k", 2), Some(1));
    /// ```
    pub fn insert(&mut self, key: &[u8], value: V) -> Option<V> {
        let hash = (self.hasher)(key);
        let old = insert(Arc::make_mut(&mut self.root), key, value, hash, 0, self.hasher);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key` from this version and returns its value. Removing an absent key copies
    /// nothing, even when nodes are shared.
    ///
    /// ```
    /// let mut map = hamt::HamtMap::new();
    /// map.insert(b"k", 1);
    /// assert_eq!(map.remove(b"k"), Some(1));
    /// assert_eq!(map.remove(b"k"), None);
    /// ```
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        if !self.contains_key(key) {
            return None;
        }
        let hash = (self.hasher)(key);
        let old = remove(Arc::make_mut(&mut self.root), key, hash, 0);
        debug_assert!(old.is_some(), "a key found by get must be removable");
        self.len -= 1;
        old
    }

    /// A new version with `key` set to `value`; `self` is unchanged.
    ///
    /// ```
    /// let v1 = hamt::HamtMap::new();
    /// let v2 = v1.with_inserted(b"k", 1);
    /// assert!(v1.is_empty() && v2.len() == 1);
    /// ```
    pub fn with_inserted(&self, key: &[u8], value: V) -> Self {
        let mut next = self.clone();
        next.insert(key, value);
        next
    }

    /// A new version without `key`; `self` is unchanged.
    ///
    /// ```
    /// let v1 = hamt::HamtMap::new().with_inserted(b"k", 1);
    /// let v2 = v1.with_removed(b"k");
    /// assert!(v1.len() == 1 && v2.is_empty());
    /// ```
    pub fn with_removed(&self, key: &[u8]) -> Self {
        let mut next = self.clone();
        next.remove(key);
        next
    }

    /// Whether both handles are the same version (share the root node).
    ///
    /// ```
    /// let v1 = hamt::HamtMap::<u8>::new();
    /// assert!(v1.ptr_eq(&v1.clone()));
    /// ```
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.root, &other.root)
    }

    /// The entries in the map's deterministic order (see the invariants on [`HamtMap`]).
    ///
    /// ```
    /// let mut map = hamt::HamtMap::new();
    /// map.insert(b"a", 1);
    /// map.insert(b"b", 2);
    /// let mut sum = 0;
    /// for (_key, value) in map.iter() { sum += value; }
    /// assert_eq!(sum, 3);
    /// ```
    pub fn iter(&self) -> Iter<'_, V> {
        Iter { stack: vec![(&*self.root, 0)], remaining: self.len }
    }
}

/// Iterator over `(key, value)` pairs of a [`HamtMap`], created by [`HamtMap::iter`].
pub struct Iter<'a, V> {
    stack: Vec<(&'a Node<V>, usize)>,
    remaining: usize,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (&'a [u8], &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let top = self.stack.len().checked_sub(1)?;
            let (node, pos) = self.stack[top];
            match node {
                Node::Branch { data, nodes, .. } => {
                    if pos < data.len() {
                        self.stack[top].1 += 1;
                        self.remaining -= 1;
                        return Some((&data[pos].key, &data[pos].value));
                    }
                    if let Some(child) = nodes.get(pos - data.len()) {
                        self.stack[top].1 += 1;
                        self.stack.push((child, 0));
                    } else {
                        self.stack.pop();
                    }
                }
                Node::Collision { entries, .. } => {
                    if let Some(entry) = entries.get(pos) {
                        self.stack[top].1 += 1;
                        self.remaining -= 1;
                        return Some((&entry.key, &entry.value));
                    }
                    self.stack.pop();
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}

impl<'a, V: Clone> IntoIterator for &'a HamtMap<V> {
    type Item = (&'a [u8], &'a V);
    type IntoIter = Iter<'a, V>;
    fn into_iter(self) -> Iter<'a, V> {
        self.iter()
    }
}

/// Why a byte buffer was rejected by [`HamtMap::from_bytes`] or [`HamtMap::apply_changes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer does not start with the `RSHM` magic.
    BadMagic,
    /// The format version is not one this build reads.
    UnsupportedVersion(u8),
    /// Reserved header bytes are not zero.
    BadHeader,
    /// The buffer ends inside a header, length or payload.
    Truncated,
    /// A length prefix is longer than 5 bytes or exceeds `u32::MAX`.
    BadLength,
    /// The same key appears twice in a snapshot.
    DuplicateKey,
    /// Bytes remain after the last entry the header announced.
    TrailingBytes,
    /// A change record has an operation byte other than 0 (remove) or 1 (set).
    BadOperation(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadMagic => write!(f, "not a ringstate HAMT buffer (bad magic)"),
            DecodeError::UnsupportedVersion(v) => write!(f, "unsupported HAMT format version {v}"),
            DecodeError::BadHeader => write!(f, "reserved header bytes are not zero"),
            DecodeError::Truncated => write!(f, "buffer is truncated"),
            DecodeError::BadLength => write!(f, "malformed length prefix"),
            DecodeError::DuplicateKey => write!(f, "duplicate key in snapshot"),
            DecodeError::TrailingBytes => write!(f, "unexpected bytes after the last entry"),
            DecodeError::BadOperation(op) => write!(f, "unknown change operation {op}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The snapshot magic: "RSHM" (ringstate HAMT map).
pub const MAGIC: [u8; 4] = *b"RSHM";
/// The snapshot format version written by [`HamtMap::to_bytes`].
pub const FORMAT_VERSION: u8 = 1;
const HEADER_LEN: usize = 16;

/// Appends `value` as an unsigned LEB128 varint.
pub fn write_varint(out: &mut Vec<u8>, mut value: u32) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u32, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..5 {
            let byte = *self.bytes.get(self.at).ok_or(DecodeError::Truncated)?;
            self.at += 1;
            value |= ((byte & 0x7f) as u64) << (7 * i);
            if byte & 0x80 == 0 {
                return u32::try_from(value).map_err(|_| DecodeError::BadLength);
            }
        }
        Err(DecodeError::BadLength)
    }

    fn bytes(&mut self, len: u32) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(len as usize).ok_or(DecodeError::Truncated)?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let byte = *self.bytes.get(self.at).ok_or(DecodeError::Truncated)?;
        self.at += 1;
        Ok(byte)
    }

    fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

impl<V: Clone + AsRef<[u8]>> HamtMap<V> {
    /// The whole version as one buffer, in iteration order:
    ///
    /// ```text
    /// offset 0   4 bytes  "RSHM"
    /// offset 4   1 byte   format version (1)
    /// offset 5   3 bytes  reserved, zero
    /// offset 8   8 bytes  entry count, u64 little-endian
    /// offset 16  entries: varint key length, key bytes, varint value length, value bytes
    /// ```
    /// Varints are unsigned LEB128 of at most 5 bytes (values up to `u32::MAX`). Equal maps give
    /// equal buffers because the shape, and so the order, is canonical.
    ///
    /// ```
    /// let mut map: hamt::HamtMap<Vec<u8>> = hamt::HamtMap::new();
    /// map.insert(b"k", b"v".to_vec());
    /// let bytes = map.to_bytes();
    /// assert_eq!(&bytes[..4], b"RSHM");
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.len * 16);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[FORMAT_VERSION, 0, 0, 0]);
        out.extend_from_slice(&(self.len as u64).to_le_bytes());
        for (key, value) in self.iter() {
            let value = value.as_ref();
            write_varint(&mut out, key.len() as u32);
            out.extend_from_slice(key);
            write_varint(&mut out, value.len() as u32);
            out.extend_from_slice(value);
        }
        out
    }
}

impl<V: Clone + for<'a> From<&'a [u8]>> HamtMap<V> {
    /// Decodes a buffer written by [`HamtMap::to_bytes`]. Corrupt input (bad magic or version,
    /// truncation, malformed lengths, duplicate keys, trailing bytes) is an error, never a panic.
    ///
    /// ```
    /// let mut map: hamt::HamtMap<Vec<u8>> = hamt::HamtMap::new();
    /// map.insert(b"k", b"v".to_vec());
    /// let copy = hamt::HamtMap::<Vec<u8>>::from_bytes(&map.to_bytes()).unwrap();
    /// assert_eq!(copy.get(b"k"), Some(&b"v".to_vec()));
    /// assert!(hamt::HamtMap::<Vec<u8>>::from_bytes(b"nonsense").is_err());
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_bytes_with_hasher(bytes, hash)
    }

    /// [`HamtMap::from_bytes`] into a map that uses `hasher`.
    ///
    /// ```
    /// let map = hamt::HamtMap::<Vec<u8>>::with_hasher(|_| 1).with_inserted(b"k", vec![1]);
    /// let copy = hamt::HamtMap::<Vec<u8>>::from_bytes_with_hasher(&map.to_bytes(), |_| 1).unwrap();
    /// assert_eq!(copy.len(), 1);
    /// ```
    pub fn from_bytes_with_hasher(bytes: &[u8], hasher: HashFn) -> Result<Self, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(if bytes.len() >= 4 && bytes[..4] != MAGIC { DecodeError::BadMagic } else { DecodeError::Truncated });
        }
        if bytes[..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        if bytes[4] != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion(bytes[4]));
        }
        if bytes[5..8] != [0, 0, 0] {
            return Err(DecodeError::BadHeader);
        }
        let count = u64::from_le_bytes(bytes[8..16].try_into().expect("8 header bytes"));
        // Every entry takes at least two bytes, so a larger count cannot be honest.
        if count > ((bytes.len() - HEADER_LEN) / 2) as u64 {
            return Err(DecodeError::Truncated);
        }
        let mut reader = Reader { bytes, at: HEADER_LEN };
        let mut map = Self::with_hasher(hasher);
        for _ in 0..count {
            let key_len = reader.varint()?;
            let key = reader.bytes(key_len)?;
            let value_len = reader.varint()?;
            let value = reader.bytes(value_len)?;
            if map.insert(key, V::from(value)).is_some() {
                return Err(DecodeError::DuplicateKey);
            }
        }
        if !reader.done() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(map)
    }

    /// Applies a batch of changes encoded in one buffer, all or nothing: on error this version is
    /// unchanged. This is how a transaction's writes cross from JavaScript in a single call.
    ///
    /// The buffer is a sequence of records: an operation byte, `1` (set) followed by varint key
    /// length, key, varint value length, value; or `0` (remove) followed by varint key length, key.
    /// Records apply in order, so a later record for the same key wins. Returns how many records
    /// were applied.
    ///
    /// ```
    /// let mut map: hamt::HamtMap<Vec<u8>> = hamt::HamtMap::new();
    /// let changes = [1, 1, b'a', 1, b'x', 1, 1, b'b', 0, 0, 1, b'a'];
    /// assert_eq!(map.apply_changes(&changes), Ok(3));
    /// assert_eq!(map.get(b"b"), Some(&vec![]));
    /// assert!(!map.contains_key(b"a"));
    /// ```
    pub fn apply_changes(&mut self, changes: &[u8]) -> Result<usize, DecodeError> {
        // Validate everything first so the edits can then go in place (no copy of a version this
        // handle owns alone) without a failure half-way.
        let applied = for_each_change(changes, |_, _| {})?;
        for_each_change(changes, |key, value| match value {
            Some(value) => {
                self.insert(key, V::from(value));
            }
            None => {
                self.remove(key);
            }
        })?;
        Ok(applied)
    }
}

fn for_each_change<'a>(changes: &'a [u8], mut visit: impl FnMut(&'a [u8], Option<&'a [u8]>)) -> Result<usize, DecodeError> {
    let mut reader = Reader { bytes: changes, at: 0 };
    let mut count = 0;
    while !reader.done() {
        let op = reader.byte()?;
        if op > 1 {
            return Err(DecodeError::BadOperation(op));
        }
        let key_len = reader.varint()?;
        let key = reader.bytes(key_len)?;
        if op == 1 {
            let value_len = reader.varint()?;
            visit(key, Some(reader.bytes(value_len)?));
        } else {
            visit(key, None);
        }
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests;

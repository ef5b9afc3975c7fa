//! A persistent hash array mapped trie (HAMT) from byte-string keys to byte-string values, in the
//! CHAMP layout.
//!
//! This is the data structure behind ringstate's state cache: every committed append produces a new
//! version of the map that shares all unchanged nodes with the previous one, so readers can hold an
//! old version for as long as they like while writers move on. It knows nothing of JavaScript; the
//! Node-API binding in `crates/ringstate-node` only converts values.
//!
//! See [`HamtMap`] for the complexity table, the invariants and examples, [`hash`] for the fixed hash
//! function, and [`HamtMap::to_bytes`] / [`HamtMap::apply_changes`] for the two byte formats.

use std::alloc::{self, Layout};
use std::fmt;
use std::ptr::{self, NonNull};
use std::slice;
use std::sync::atomic::{self, AtomicU32, Ordering};
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
    /// Entry blocks alive on this thread, for the same tests.
    static LIVE_ENTRIES: std::cell::Cell<isize> = const { std::cell::Cell::new(0) };
}

#[inline]
fn node_created() {
    #[cfg(test)]
    LIVE_NODES.with(|n| n.set(n.get() + 1));
}

/// The header of an entry's heap block; the key bytes and then the value bytes follow it.
#[repr(C)]
struct Header {
    refs: AtomicU32,
    key_len: u32,
    value_len: u32,
}

const ENTRY_HEADER: usize = std::mem::size_of::<Header>();

/// One key and its value in a single heap block, shared by reference count between the versions
/// (and node copies) that hold it: `[refs u32][key len u32][value len u32][key][value]`.
///
/// Why one block: with `key: Arc<[u8]>, value: Arc<[u8]>` (two fat pointers, two blocks with 16-byte
/// Arc headers), 1M entries of a 13-byte key and a ~110-byte JSON value took 221 MiB of requested
/// bytes and 2.66M allocations, 257 MiB in glibc's arena (measured with a counting global
/// allocator and `mallinfo2` in the addon). Per entry that was 32 (slot) + 48 + 144 (glibc chunks)
/// = 224 bytes; one block behind a thin pointer is 8 + 144 = 152.
struct Entry {
    ptr: NonNull<Header>,
}

// SAFETY: the block is immutable after construction except for the atomic reference count, so
// sharing and sending handles across threads is as safe as for `Arc<[u8]>`.
unsafe impl Send for Entry {}
// SAFETY: as above.
unsafe impl Sync for Entry {}

impl Entry {
    fn layout(key_len: usize, value_len: usize) -> Layout {
        Layout::from_size_align(ENTRY_HEADER + key_len + value_len, std::mem::align_of::<Header>()).expect("HamtMap: entry larger than isize::MAX bytes")
    }

    fn new(key: &[u8], value: &[u8]) -> Entry {
        let key_len = u32::try_from(key.len()).expect("HamtMap: key longer than u32::MAX bytes");
        let value_len = u32::try_from(value.len()).expect("HamtMap: value longer than u32::MAX bytes");
        let layout = Entry::layout(key.len(), value.len());
        // SAFETY: the layout is never zero-sized (it includes the header).
        let raw = unsafe { alloc::alloc(layout) } as *mut Header;
        let Some(ptr) = NonNull::new(raw) else { alloc::handle_alloc_error(layout) };
        // SAFETY: the block is fresh, aligned for Header and large enough for the header, the key
        // and the value; the sources do not overlap it.
        unsafe {
            raw.write(Header { refs: AtomicU32::new(1), key_len, value_len });
            let bytes = (raw as *mut u8).add(ENTRY_HEADER);
            ptr::copy_nonoverlapping(key.as_ptr(), bytes, key.len());
            ptr::copy_nonoverlapping(value.as_ptr(), bytes.add(key.len()), value.len());
        }
        #[cfg(test)]
        LIVE_ENTRIES.with(|n| n.set(n.get() + 1));
        Entry { ptr }
    }

    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: the block lives while this handle holds a reference.
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    fn key(&self) -> &[u8] {
        let len = self.header().key_len as usize;
        // SAFETY: `len` key bytes follow the header, initialized by `new`, immutable since.
        unsafe { slice::from_raw_parts((self.ptr.as_ptr() as *const u8).add(ENTRY_HEADER), len) }
    }

    #[inline]
    fn value(&self) -> &[u8] {
        let header = self.header();
        // SAFETY: the value bytes follow the key bytes, initialized by `new`, immutable since.
        unsafe { slice::from_raw_parts((self.ptr.as_ptr() as *const u8).add(ENTRY_HEADER + header.key_len as usize), header.value_len as usize) }
    }
}

impl Clone for Entry {
    fn clone(&self) -> Self {
        // Relaxed, as in `Arc::clone`: a new reference can only be made from an existing one.
        let previous = self.header().refs.fetch_add(1, Ordering::Relaxed);
        // Abort rather than wrap: more than 2^31 copies of one entry means references are leaking.
        if previous > i32::MAX as u32 {
            std::process::abort();
        }
        Entry { ptr: self.ptr }
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Pairs with the Release above, as in `Arc::drop`: every use by other handles happens
        // before the block is freed.
        atomic::fence(Ordering::Acquire);
        let header = self.header();
        let layout = Entry::layout(header.key_len as usize, header.value_len as usize);
        // SAFETY: this was the last reference; the block was allocated by `new` with this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr() as *mut u8, layout) };
        #[cfg(test)]
        LIVE_ENTRIES.with(|n| n.set(n.get() - 1));
    }
}

enum Node {
    /// `datamap` marks slots holding an entry inline, `nodemap` slots holding a child node; the
    /// two never overlap. `data` and `nodes` are in slot order.
    Branch { datamap: u32, nodemap: u32, data: Vec<Entry>, nodes: Vec<Arc<Node>> },
    /// Two or more entries whose keys hash to the same 32 bits, sorted by key bytes.
    Collision { hash: u32, entries: Vec<Entry> },
}

impl Node {
    fn empty() -> Self {
        node_created();
        Node::Branch { datamap: 0, nodemap: 0, data: Vec::new(), nodes: Vec::new() }
    }
}

impl Clone for Node {
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
impl Drop for Node {
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
fn merge(a: Entry, ha: u32, b: Entry, hb: u32, shift: u32) -> Node {
    node_created();
    if shift >= HASH_BITS {
        let entries = if a.key() < b.key() { vec![a, b] } else { vec![b, a] };
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

/// Stores `key` -> `value` below `node`; returns whether it replaced an entry.
fn insert(node: &mut Node, key: &[u8], value: &[u8], hash: u32, shift: u32, hasher: HashFn) -> bool {
    match node {
        Node::Branch { datamap, nodemap, data, nodes } => {
            let bit = slot(hash, shift);
            if *datamap & bit != 0 {
                let i = index(*datamap, bit);
                if data[i].key() == key {
                    data[i] = Entry::new(key, value);
                    return true;
                }
                let existing = data.remove(i);
                *datamap ^= bit;
                let existing_hash = hasher(existing.key());
                let fresh = Entry::new(key, value);
                let child = merge(existing, existing_hash, fresh, hash, shift + BITS);
                let j = index(*nodemap, bit);
                *nodemap |= bit;
                nodes.insert(j, Arc::new(child));
                false
            } else if *nodemap & bit != 0 {
                let j = index(*nodemap, bit);
                insert(Arc::make_mut(&mut nodes[j]), key, value, hash, shift + BITS, hasher)
            } else {
                let i = index(*datamap, bit);
                *datamap |= bit;
                data.insert(i, Entry::new(key, value));
                false
            }
        }
        Node::Collision { entries, .. } => match entries.binary_search_by(|e| e.key().cmp(key)) {
            Ok(i) => {
                entries[i] = Entry::new(key, value);
                true
            }
            Err(i) => {
                entries.insert(i, Entry::new(key, value));
                false
            }
        },
    }
}

/// Removes `key` (known to be present) and keeps the shape canonical: a child left holding a single
/// entry and no children is replaced by that entry, inline in this node.
fn remove(node: &mut Node, key: &[u8], hash: u32, shift: u32) -> Option<Entry> {
    match node {
        Node::Branch { datamap, nodemap, data, nodes } => {
            let bit = slot(hash, shift);
            if *datamap & bit != 0 {
                let i = index(*datamap, bit);
                if data[i].key() != key {
                    return None;
                }
                *datamap ^= bit;
                Some(data.remove(i))
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
            let i = entries.binary_search_by(|e| e.key().cmp(key)).ok()?;
            Some(entries.remove(i))
        }
    }
}

/// The node's only entry, taken out, when the node holds exactly one entry and no children.
fn take_single(node: &mut Node) -> Option<Entry> {
    match node {
        Node::Branch { nodemap: 0, data, .. } if data.len() == 1 => data.pop(),
        Node::Collision { entries, .. } if entries.len() == 1 => entries.pop(),
        _ => None,
    }
}

/// A persistent (immutable, structurally shared) map from byte-string keys to byte-string values.
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
/// let mut v1 = HamtMap::new();
/// v1.insert(b"order:1", b"10");
/// let mut v2 = v1.clone(); // O(1) version handle
/// v2.insert(b"order:2", b"20");
/// assert_eq!(v1.len(), 1); // the old version is unchanged
/// assert_eq!(v2.get(b"order:2"), Some(&b"20"[..]));
/// ```
pub struct HamtMap {
    root: Arc<Node>,
    len: usize,
    hasher: HashFn,
}

impl Clone for HamtMap {
    fn clone(&self) -> Self {
        HamtMap { root: Arc::clone(&self.root), len: self.len, hasher: self.hasher }
    }
}

impl Default for HamtMap {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for HamtMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v)))).finish()
    }
}

impl HamtMap {
    /// An empty map using the fixed [`hash`].
    ///
    /// ```
    /// let map = hamt::HamtMap::new();
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
    /// map.insert(b"a", b"1");
    /// map.insert(b"b", b"2");
    /// assert_eq!(map.get(b"b"), Some(&b"2"[..]));
    /// ```
    pub fn with_hasher(hasher: HashFn) -> Self {
        HamtMap { root: Arc::new(Node::empty()), len: 0, hasher }
    }

    /// Number of entries, O(1).
    ///
    /// ```
    /// let mut map = hamt::HamtMap::new();
    /// map.insert(b"k", b"");
    /// assert_eq!(map.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map has no entries.
    ///
    /// ```
    /// assert!(hamt::HamtMap::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value stored under `key`.
    ///
    /// ```
    /// let mut map = hamt::HamtMap::new();
    /// map.insert(b"k", b"1");
    /// assert_eq!(map.get(b"k"), Some(&b"1"[..]));
    /// assert_eq!(map.get(b"x"), None);
    /// ```
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let hash = (self.hasher)(key);
        let mut node: &Node = &self.root;
        let mut shift = 0;
        loop {
            match node {
                Node::Branch { datamap, nodemap, data, nodes } => {
                    let bit = slot(hash, shift);
                    if datamap & bit != 0 {
                        let entry = &data[index(*datamap, bit)];
                        return if entry.key() == key { Some(entry.value()) } else { None };
                    }
                    if nodemap & bit == 0 {
                        return None;
                    }
                    node = &nodes[index(*nodemap, bit)];
                    shift += BITS;
                }
                Node::Collision { entries, .. } => {
                    return entries.binary_search_by(|e| e.key().cmp(key)).ok().map(|i| entries[i].value());
                }
            }
        }
    }

    /// Whether `key` is present.
    ///
    /// ```
    /// let mut map = hamt::HamtMap::new();
    /// map.insert(b"k", b"1");
    /// assert!(map.contains_key(b"k"));
    /// ```
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.get(key).is_some()
    }

    /// Stores `value` under `key` in this version; returns whether it replaced a value. Other
    /// versions sharing nodes with this one are not affected. The key and the value are copied
    /// into one new heap block (see the layout note on the entry type).
    ///
    /// Panics with "HamtMap: key longer than u32::MAX bytes" (or value) on lengths the byte
    /// formats cannot represent.
    ///
    /// ```
    /// let mut map = hamt::HamtMap::new();
    /// assert!(!map.insert(b"k", b"1"));
    /// assert!(map.insert(b"k", b"2"));
    /// assert_eq!(map.get(b"k"), Some(&b"2"[..]));
    /// ```
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> bool {
        let hash = (self.hasher)(key);
        let replaced = insert(Arc::make_mut(&mut self.root), key, value, hash, 0, self.hasher);
        if !replaced {
            self.len += 1;
        }
        replaced
    }

    /// Removes `key` from this version; returns whether it was present. Removing an absent key
    /// copies nothing, even when nodes are shared.
    ///
    /// ```
    /// let mut map = hamt::HamtMap::new();
    /// map.insert(b"k", b"1");
    /// assert!(map.remove(b"k"));
    /// assert!(!map.remove(b"k"));
    /// ```
    pub fn remove(&mut self, key: &[u8]) -> bool {
        if !self.contains_key(key) {
            return false;
        }
        let hash = (self.hasher)(key);
        let removed = remove(Arc::make_mut(&mut self.root), key, hash, 0);
        debug_assert!(removed.is_some(), "a key found by get must be removable");
        self.len -= 1;
        true
    }

    /// A new version with `key` set to `value`; `self` is unchanged.
    ///
    /// ```
    /// let v1 = hamt::HamtMap::new();
    /// let v2 = v1.with_inserted(b"k", b"1");
    /// assert!(v1.is_empty() && v2.len() == 1);
    /// ```
    pub fn with_inserted(&self, key: &[u8], value: &[u8]) -> Self {
        let mut next = self.clone();
        next.insert(key, value);
        next
    }

    /// A new version without `key`; `self` is unchanged.
    ///
    /// ```
    /// let v1 = hamt::HamtMap::new().with_inserted(b"k", b"1");
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
    /// let v1 = hamt::HamtMap::new();
    /// assert!(v1.ptr_eq(&v1.clone()));
    /// ```
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.root, &other.root)
    }

    /// The entries in the map's deterministic order (see the invariants on [`HamtMap`]).
    ///
    /// ```
    /// let mut map = hamt::HamtMap::new();
    /// map.insert(b"a", b"1");
    /// map.insert(b"b", b"22");
    /// let mut total = 0;
    /// for (_key, value) in map.iter() { total += value.len(); }
    /// assert_eq!(total, 3);
    /// ```
    pub fn iter(&self) -> Iter<'_> {
        Iter { stack: vec![(&*self.root, 0)], remaining: self.len }
    }
}

/// Iterator over `(key, value)` pairs of a [`HamtMap`], created by [`HamtMap::iter`].
pub struct Iter<'a> {
    stack: Vec<(&'a Node, usize)>,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let top = self.stack.len().checked_sub(1)?;
            let (node, pos) = self.stack[top];
            match node {
                Node::Branch { data, nodes, .. } => {
                    if pos < data.len() {
                        self.stack[top].1 += 1;
                        self.remaining -= 1;
                        return Some((data[pos].key(), data[pos].value()));
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
                        return Some((entry.key(), entry.value()));
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

impl ExactSizeIterator for Iter<'_> {}

impl<'a> IntoIterator for &'a HamtMap {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
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

impl HamtMap {
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
    /// let mut map = hamt::HamtMap::new();
    /// map.insert(b"k", b"v");
    /// let bytes = map.to_bytes();
    /// assert_eq!(&bytes[..4], b"RSHM");
    /// ```
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + self.len * 16);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[FORMAT_VERSION, 0, 0, 0]);
        out.extend_from_slice(&(self.len as u64).to_le_bytes());
        for (key, value) in self.iter() {
            write_varint(&mut out, key.len() as u32);
            out.extend_from_slice(key);
            write_varint(&mut out, value.len() as u32);
            out.extend_from_slice(value);
        }
        out
    }

    /// Decodes a buffer written by [`HamtMap::to_bytes`]. Corrupt input (bad magic or version,
    /// truncation, malformed lengths, duplicate keys, trailing bytes) is an error, never a panic.
    ///
    /// ```
    /// let mut map = hamt::HamtMap::new();
    /// map.insert(b"k", b"v");
    /// let copy = hamt::HamtMap::from_bytes(&map.to_bytes()).unwrap();
    /// assert_eq!(copy.get(b"k"), Some(&b"v"[..]));
    /// assert!(hamt::HamtMap::from_bytes(b"nonsense").is_err());
    /// ```
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_bytes_with_hasher(bytes, hash)
    }

    /// [`HamtMap::from_bytes`] into a map that uses `hasher`.
    ///
    /// ```
    /// let map = hamt::HamtMap::with_hasher(|_| 1).with_inserted(b"k", &[1]);
    /// let copy = hamt::HamtMap::from_bytes_with_hasher(&map.to_bytes(), |_| 1).unwrap();
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
            if map.insert(key, value) {
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
    /// let mut map = hamt::HamtMap::new();
    /// let changes = [1, 1, b'a', 1, b'x', 1, 1, b'b', 0, 0, 1, b'a'];
    /// assert_eq!(map.apply_changes(&changes), Ok(3));
    /// assert_eq!(map.get(b"b"), Some(&b""[..]));
    /// assert!(!map.contains_key(b"a"));
    /// ```
    pub fn apply_changes(&mut self, changes: &[u8]) -> Result<usize, DecodeError> {
        // Validate everything first so the edits can then go in place (no copy of a version this
        // handle owns alone) without a failure half-way.
        let applied = for_each_change(changes, |_, _| {})?;
        for_each_change(changes, |key, value| match value {
            Some(value) => {
                self.insert(key, value);
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

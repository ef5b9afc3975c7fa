use super::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicIsize, Ordering};

/// SplitMix64: a small seeded PRNG so every run explores the same operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn live_nodes() -> isize {
    LIVE_NODES.with(|n| n.get())
}

/// Walks the trie and checks every invariant documented on `HamtMap`; returns the entry count.
fn check_invariants<V: Clone>(map: &HamtMap<V>) {
    fn walk<V>(node: &Node<V>, is_root: bool, shift: u32, prefix: u32, hasher: HashFn) -> usize {
        match node {
            Node::Branch { datamap, nodemap, data, nodes } => {
                assert_eq!(datamap & nodemap, 0, "a slot holds both an entry and a node");
                assert_eq!(datamap.count_ones() as usize, data.len());
                assert_eq!(nodemap.count_ones() as usize, nodes.len());
                assert!(shift < HASH_BITS, "branch below the last level");
                let low = if shift == 0 { 0 } else { u32::MAX >> (HASH_BITS - shift) };
                for (i, entry) in data.iter().enumerate() {
                    let h = hasher(&entry.key);
                    assert_eq!(h & low, prefix, "entry stored off its hash path");
                    let bit = slot(h, shift);
                    assert!(datamap & bit != 0 && index(*datamap, bit) == i, "entry in the wrong slot");
                }
                let mut total = data.len();
                let mut child_slots = (0..32).filter(|b| nodemap & (1 << b) != 0);
                for child in nodes {
                    let b = child_slots.next().unwrap();
                    total += walk(child, false, shift + BITS, prefix | (b << shift), hasher);
                }
                if !is_root {
                    assert!(total >= 2, "non-root node with fewer than two entries: not canonical");
                }
                total
            }
            Node::Collision { hash, entries } => {
                assert!(shift >= HASH_BITS, "collision node above the last level");
                assert!(entries.len() >= 2, "collision node with fewer than two entries");
                assert!(entries.windows(2).all(|w| w[0].key < w[1].key), "collision entries not sorted");
                assert!(entries.iter().all(|e| hasher(&e.key) == *hash));
                assert_eq!(*hash, prefix, "collision node off its hash path");
                entries.len()
            }
        }
    }
    let total = walk(&map.root, true, 0, 0, map.hasher);
    assert_eq!(total, map.len(), "len does not match the entries");
    assert_eq!(map.iter().count(), map.len());
}

fn model_based(hasher: HashFn, ops: usize, key_space: u64, seed: u64) {
    let mut rng = Rng(seed);
    let mut map: HamtMap<u64> = HamtMap::with_hasher(hasher);
    let mut model: HashMap<Vec<u8>, u64> = HashMap::new();
    for step in 0..ops {
        let key = format!("entity:{}", rng.below(key_space)).into_bytes();
        match rng.below(10) {
            0..=4 => {
                let value = rng.next();
                assert_eq!(map.insert(&key, value), model.insert(key.clone(), value));
            }
            5..=7 => assert_eq!(map.remove(&key), model.remove(&key)),
            _ => assert_eq!(map.get(&key), model.get(&key)),
        }
        assert_eq!(map.len(), model.len());
        if step % 997 == 0 {
            check_invariants(&map);
            let mut seen: HashMap<Vec<u8>, u64> = HashMap::new();
            for (k, v) in map.iter() {
                assert!(seen.insert(k.to_vec(), *v).is_none(), "iteration yielded a key twice");
            }
            assert_eq!(seen, model);
        }
    }
    // Remove everything: the map must shrink back to an empty root.
    let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
    for key in keys {
        assert_eq!(map.remove(&key), model.remove(&key));
    }
    check_invariants(&map);
    assert!(map.is_empty());
}

#[test]
fn matches_a_hash_map_over_100k_random_operations() {
    model_based(hash, 100_000, 5_000, 1);
}

#[test]
fn matches_a_hash_map_when_every_hash_collides() {
    model_based(|_| 0xdead_beef, 5_000, 200, 2);
}

#[test]
fn matches_a_hash_map_with_few_distinct_hashes() {
    // 16 hash values: deep paths, many collision nodes, and inlining up through several levels.
    model_based(|k| hash(k) & 0x8000_000f, 20_000, 2_000, 3);
}

#[test]
fn the_shape_is_canonical_whatever_the_history() {
    let mut rng = Rng(4);
    let keys: Vec<Vec<u8>> = (0..3_000).map(|i| format!("k{i}").into_bytes()).collect();
    let mut direct: HamtMap<u64> = HamtMap::with_hasher(|k| hash(k) & 0xc000_03ff);
    for key in &keys[..1_000] {
        direct.insert(key, 1);
    }
    let mut churned: HamtMap<u64> = HamtMap::with_hasher(|k| hash(k) & 0xc000_03ff);
    for _ in 0..20_000 {
        let key = &keys[rng.below(3_000) as usize];
        churned.insert(key, 1);
    }
    for key in &keys[1_000..] {
        churned.remove(key);
    }
    for key in &keys[..1_000] {
        churned.insert(key, 1);
    }
    check_invariants(&churned);
    assert_eq!(churned.to_bytes_for_test(), direct.to_bytes_for_test());
}

impl HamtMap<u64> {
    fn to_bytes_for_test(&self) -> Vec<u8> {
        self.iter().flat_map(|(k, v)| k.iter().copied().chain(v.to_le_bytes())).collect()
    }
}

#[test]
fn old_versions_are_unchanged_by_later_edits() {
    let mut rng = Rng(5);
    let mut versions: Vec<(HamtMap<u64>, HashMap<Vec<u8>, u64>)> = Vec::new();
    let mut map: HamtMap<u64> = HamtMap::new();
    let mut model = HashMap::new();
    for _ in 0..50 {
        versions.push((map.clone(), model.clone()));
        for _ in 0..200 {
            let key = format!("e{}", rng.below(1_000)).into_bytes();
            if rng.below(3) == 0 {
                map.remove(&key);
                model.remove(&key);
            } else {
                let v = rng.next();
                map.insert(&key, v);
                model.insert(key, v);
            }
        }
    }
    for (version, expected) in &versions {
        check_invariants(version);
        assert_eq!(version.len(), expected.len());
        for (k, v) in expected {
            assert_eq!(version.get(k), Some(v));
        }
    }
    let functional = versions[10].0.with_inserted(b"new", 1).with_removed(b"e1");
    assert!(!versions[10].0.contains_key(b"new"));
    assert!(functional.contains_key(b"new") && !functional.contains_key(b"e1"));
}

#[test]
fn edits_of_an_unshared_version_copy_no_nodes() {
    let mut map: HamtMap<u64> = HamtMap::new();
    for i in 0..10_000u64 {
        map.insert(format!("k{i}").as_bytes(), i);
    }
    let before = live_nodes();
    for i in 0..10_000u64 {
        map.insert(format!("k{i}").as_bytes(), i + 1);
    }
    assert_eq!(live_nodes(), before, "overwriting values in an owned map created nodes");
    let shared = map.clone();
    map.insert(b"k1", 0);
    let copied = live_nodes() - before;
    assert!((1..=8).contains(&copied), "one edit of a shared version copied {copied} nodes, not one path");
    drop(shared);
}

/// A value that counts its live instances, to prove the map drops what it no longer reaches.
#[derive(Debug)]
struct Counted(Arc<AtomicIsize>);

impl Counted {
    fn new(counter: &Arc<AtomicIsize>) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Counted(Arc::clone(counter))
    }
}
impl Clone for Counted {
    fn clone(&self) -> Self {
        Counted::new(&self.0)
    }
}
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[test]
fn drops_every_node_and_value_when_the_versions_are_dropped() {
    let values = Arc::new(AtomicIsize::new(0));
    let nodes_before = live_nodes();
    {
        let mut rng = Rng(6);
        let mut map: HamtMap<Counted> = HamtMap::with_hasher(|k| hash(k) & 0xf000_0fff);
        let mut kept = Vec::new();
        for round in 0..20 {
            for _ in 0..500 {
                let key = format!("e{}", rng.below(2_000)).into_bytes();
                if rng.below(4) == 0 {
                    map.remove(&key);
                } else {
                    map.insert(&key, Counted::new(&values));
                }
            }
            if round % 3 == 0 {
                kept.push(map.clone());
            }
        }
        assert!(values.load(Ordering::SeqCst) > 0);
        drop(kept);
        // Only the latest version is alive now: exactly its entries' values remain.
        assert_eq!(values.load(Ordering::SeqCst), map.len() as isize);
    }
    assert_eq!(values.load(Ordering::SeqCst), 0, "values leaked");
    assert_eq!(live_nodes(), nodes_before, "nodes leaked");
}

fn sample_map() -> HamtMap<Vec<u8>> {
    let mut map = HamtMap::new();
    for i in 0..2_000u32 {
        let value = format!("{{\"n\":{i}}}").into_bytes();
        map.insert(format!("entity:{i}").as_bytes(), value);
    }
    map.insert(b"", Vec::new());
    map.insert("ключ-é".as_bytes(), vec![0, 255, 7]);
    map
}

#[test]
fn a_version_round_trips_through_bytes() {
    let map = sample_map();
    let bytes = map.to_bytes();
    let copy = HamtMap::<Vec<u8>>::from_bytes(&bytes).unwrap();
    check_invariants(&copy);
    assert_eq!(copy.len(), map.len());
    for (k, v) in map.iter() {
        assert_eq!(copy.get(k), Some(v));
    }
    assert_eq!(copy.to_bytes(), bytes, "equal maps must serialise identically");
    let empty = HamtMap::<Vec<u8>>::new().to_bytes();
    assert_eq!(empty.len(), HEADER_LEN);
    assert!(HamtMap::<Vec<u8>>::from_bytes(&empty).unwrap().is_empty());
    let colliding = HamtMap::<Vec<u8>>::with_hasher(|_| 3).with_inserted(b"b", vec![2]).with_inserted(b"a", vec![1]);
    let copy = HamtMap::<Vec<u8>>::from_bytes_with_hasher(&colliding.to_bytes(), |_| 3).unwrap();
    assert_eq!(copy.get(b"a"), Some(&vec![1]));
}

#[test]
fn corrupt_buffers_are_rejected_with_an_error() {
    let good = sample_map().to_bytes();
    let decode = |bytes: &[u8]| HamtMap::<Vec<u8>>::from_bytes(bytes).map(|m| m.len());
    assert_eq!(decode(b""), Err(DecodeError::Truncated));
    assert_eq!(decode(b"XXXX"), Err(DecodeError::BadMagic));
    let mut bad = good.clone();
    bad[0] = b'X';
    assert_eq!(decode(&bad), Err(DecodeError::BadMagic));
    let mut bad = good.clone();
    bad[4] = 9;
    assert_eq!(decode(&bad), Err(DecodeError::UnsupportedVersion(9)));
    let mut bad = good.clone();
    bad[6] = 1;
    assert_eq!(decode(&bad), Err(DecodeError::BadHeader));
    let mut bad = good.clone();
    bad.push(0);
    assert_eq!(decode(&bad), Err(DecodeError::TrailingBytes));
    let mut bad = good.clone();
    bad[8] = bad[8].wrapping_add(1);
    assert!(decode(&bad).is_err(), "a count one too high must fail");
    let mut bad = good.clone();
    bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(decode(&bad), Err(DecodeError::Truncated));
    let mut dup = HamtMap::<Vec<u8>>::new().with_inserted(b"a", vec![1]).to_bytes();
    dup[8] = 2;
    dup.extend_from_slice(&[1, b'a', 1, 1]);
    assert_eq!(decode(&dup), Err(DecodeError::DuplicateKey));
    let mut overlong = HamtMap::<Vec<u8>>::new().to_bytes();
    overlong[8] = 1;
    overlong.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    assert_eq!(decode(&overlong), Err(DecodeError::BadLength));
    // Every truncation and every single-byte change either decodes or errors: never a panic.
    for cut in 0..good.len().min(4_000) {
        assert!(decode(&good[..cut]).is_err(), "a truncated buffer decoded");
    }
    let mut rng = Rng(7);
    for _ in 0..2_000 {
        let mut bad = good.clone();
        let at = rng.below(bad.len() as u64) as usize;
        bad[at] ^= 1 << rng.below(8);
        let _ = decode(&bad);
    }
}

#[test]
fn a_batch_of_changes_applies_all_or_nothing() {
    let mut changes = Vec::new();
    let mut set = |out: &mut Vec<u8>, key: &[u8], value: &[u8]| {
        out.push(1);
        write_varint(out, key.len() as u32);
        out.extend_from_slice(key);
        write_varint(out, value.len() as u32);
        out.extend_from_slice(value);
    };
    set(&mut changes, b"a", b"1");
    set(&mut changes, b"b", b"2");
    set(&mut changes, b"a", b"3");
    changes.extend_from_slice(&[0, 1, b'b']);
    let base = HamtMap::<Vec<u8>>::new().with_inserted(b"c", b"0".to_vec());
    let mut next = base.clone();
    assert_eq!(next.apply_changes(&changes), Ok(4));
    assert_eq!(next.get(b"a"), Some(&b"3".to_vec()));
    assert!(!next.contains_key(b"b"));
    assert_eq!(next.len(), 2);
    assert_eq!(base.len(), 1);

    let mut broken = changes.clone();
    broken.extend_from_slice(&[7, 0]);
    let mut untouched = base.clone();
    assert_eq!(untouched.apply_changes(&broken), Err(DecodeError::BadOperation(7)));
    assert!(untouched.ptr_eq(&base), "a rejected batch changed the version");
    assert_eq!(untouched.apply_changes(&changes[..changes.len() - 1]), Err(DecodeError::Truncated));
    assert!(untouched.ptr_eq(&base));
}

#[test]
fn the_hash_is_the_documented_function() {
    // Reference values shared with ts/cache/hamt.test.ts so both twins agree.
    let expected: [(&[u8], u32); 3] = [(b"", HASH_EMPTY), (b"user:1", HASH_USER_1), ("é".as_bytes(), HASH_E_ACUTE)];
    for (key, value) in expected {
        assert_eq!(hash(key), value, "hash of {:?}", String::from_utf8_lossy(key));
    }
}

const HASH_EMPTY: u32 = 0xab3e_7c0b;
const HASH_USER_1: u32 = 0x6924_40ef;
const HASH_E_ACUTE: u32 = 0x8e47_56c7;

use super::*;
use std::collections::HashMap;

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

fn live_entries() -> isize {
    LIVE_ENTRIES.with(|n| n.get())
}

/// A value of 0 to 40 bytes: lengths vary so the one-block entry layout is exercised at every
/// offset, empty values included.
fn random_value(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(41) as usize;
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Walks the trie and checks every invariant documented on `HamtMap`; returns the entry count.
fn check_invariants(map: &HamtMap) {
    fn walk(node: &Node, is_root: bool, shift: u32, prefix: u32, hasher: HashFn) -> usize {
        match node {
            Node::Branch { datamap, nodemap, data, nodes } => {
                assert_eq!(datamap & nodemap, 0, "a slot holds both an entry and a node");
                assert_eq!(datamap.count_ones() as usize, data.len());
                assert_eq!(nodemap.count_ones() as usize, nodes.len());
                assert!(shift < HASH_BITS, "branch below the last level");
                let low = if shift == 0 { 0 } else { u32::MAX >> (HASH_BITS - shift) };
                for (i, entry) in data.iter().enumerate() {
                    let h = hasher(entry.key());
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
                assert!(entries.windows(2).all(|w| w[0].key() < w[1].key()), "collision entries not sorted");
                assert!(entries.iter().all(|e| hasher(e.key()) == *hash));
                assert_eq!(*hash, prefix, "collision node off its hash path");
                entries.len()
            }
        }
    }
    let total = walk(&map.root, true, 0, 0, map.hasher);
    assert_eq!(total, map.len(), "len does not match the entries");
    assert_eq!(map.iter().count(), map.len());
}

/// What a version should hold, for the model-based tests.
type Model = HashMap<Vec<u8>, Vec<u8>>;

fn model_based(hasher: HashFn, ops: usize, key_space: u64, seed: u64) {
    let mut rng = Rng(seed);
    let mut map = HamtMap::with_hasher(hasher);
    let mut model: Model = HashMap::new();
    for step in 0..ops {
        let key = format!("entity:{}", rng.below(key_space)).into_bytes();
        match rng.below(10) {
            0..=4 => {
                let value = random_value(&mut rng);
                assert_eq!(map.insert(&key, &value), model.insert(key.clone(), value).is_some());
            }
            5..=7 => assert_eq!(map.remove(&key), model.remove(&key).is_some()),
            _ => assert_eq!(map.get(&key), model.get(&key).map(|v| &v[..])),
        }
        assert_eq!(map.len(), model.len());
        if step % 997 == 0 {
            check_invariants(&map);
            let mut seen: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
            for (k, v) in map.iter() {
                assert!(seen.insert(k.to_vec(), v.to_vec()).is_none(), "iteration yielded a key twice");
            }
            assert_eq!(seen, model);
        }
    }
    // Remove everything: the map must shrink back to an empty root.
    let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
    for key in keys {
        assert_eq!(map.remove(&key), model.remove(&key).is_some());
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
    let mut direct = HamtMap::with_hasher(|k| hash(k) & 0xc000_03ff);
    for key in &keys[..1_000] {
        direct.insert(key, b"1");
    }
    let mut churned = HamtMap::with_hasher(|k| hash(k) & 0xc000_03ff);
    for _ in 0..20_000 {
        let key = &keys[rng.below(3_000) as usize];
        churned.insert(key, b"2");
    }
    for key in &keys[1_000..] {
        churned.remove(key);
    }
    for key in &keys[..1_000] {
        churned.insert(key, b"1");
    }
    check_invariants(&churned);
    assert_eq!(churned.to_bytes(), direct.to_bytes());
}

#[test]
fn old_versions_are_unchanged_by_later_edits() {
    let mut rng = Rng(5);
    let mut versions: Vec<(HamtMap, Model)> = Vec::new();
    let mut map = HamtMap::new();
    let mut model = HashMap::new();
    for _ in 0..50 {
        versions.push((map.clone(), model.clone()));
        for _ in 0..200 {
            let key = format!("e{}", rng.below(1_000)).into_bytes();
            if rng.below(3) == 0 {
                map.remove(&key);
                model.remove(&key);
            } else {
                let v = random_value(&mut rng);
                map.insert(&key, &v);
                model.insert(key, v);
            }
        }
    }
    for (version, expected) in &versions {
        check_invariants(version);
        assert_eq!(version.len(), expected.len());
        for (k, v) in expected {
            assert_eq!(version.get(k), Some(&v[..]));
        }
    }
    let functional = versions[10].0.with_inserted(b"new", b"1").with_removed(b"e1");
    assert!(!versions[10].0.contains_key(b"new"));
    assert!(functional.contains_key(b"new") && !functional.contains_key(b"e1"));
}

#[test]
fn edits_of_an_unshared_version_copy_no_nodes() {
    let mut map = HamtMap::new();
    for i in 0..10_000u64 {
        map.insert(format!("k{i}").as_bytes(), i.to_string().as_bytes());
    }
    let before = live_nodes();
    let entries_before = live_entries();
    for i in 0..10_000u64 {
        map.insert(format!("k{i}").as_bytes(), (i + 1).to_string().as_bytes());
    }
    assert_eq!(live_nodes(), before, "overwriting values in an owned map created nodes");
    assert_eq!(live_entries(), entries_before, "overwritten entries of an owned map were not freed");
    let shared = map.clone();
    map.insert(b"k1", b"0");
    let copied = live_nodes() - before;
    assert!((1..=8).contains(&copied), "one edit of a shared version copied {copied} nodes, not one path");
    drop(shared);
}

#[test]
fn drops_every_node_and_entry_when_the_versions_are_dropped() {
    let nodes_before = live_nodes();
    let entries_before = live_entries();
    {
        let mut rng = Rng(6);
        let mut map = HamtMap::with_hasher(|k| hash(k) & 0xf000_0fff);
        let mut kept = Vec::new();
        for round in 0..20 {
            for _ in 0..500 {
                let key = format!("e{}", rng.below(2_000)).into_bytes();
                if rng.below(4) == 0 {
                    map.remove(&key);
                } else {
                    map.insert(&key, &random_value(&mut rng));
                }
            }
            if round % 3 == 0 {
                kept.push(map.clone());
            }
        }
        assert!(live_entries() - entries_before > map.len() as isize, "the kept versions hold entries of their own");
        drop(kept);
        // Only the latest version is alive now: exactly its entries remain.
        assert_eq!(live_entries() - entries_before, map.len() as isize);
    }
    assert_eq!(live_entries(), entries_before, "entries leaked");
    assert_eq!(live_nodes(), nodes_before, "nodes leaked");
}

#[test]
fn an_entry_shared_by_versions_lives_until_the_last_of_them_is_dropped() {
    let entries_before = live_entries();
    let mut v1 = HamtMap::new();
    v1.insert(b"a", b"first");
    v1.insert(b"b", b"kept");
    let mut v2 = v1.clone();
    v2.insert(b"a", b"second");
    // "a" -> "first" (v1 only), "a" -> "second" (v2 only), "b" shared by both.
    assert_eq!(live_entries() - entries_before, 3);
    drop(v1);
    assert_eq!(live_entries() - entries_before, 2);
    assert_eq!(v2.get(b"a"), Some(&b"second"[..]));
    assert_eq!(v2.get(b"b"), Some(&b"kept"[..]));
    drop(v2);
    assert_eq!(live_entries(), entries_before);
}

fn sample_map() -> HamtMap {
    let mut map = HamtMap::new();
    for i in 0..2_000u32 {
        let value = format!("{{\"n\":{i}}}").into_bytes();
        map.insert(format!("entity:{i}").as_bytes(), &value);
    }
    map.insert(b"", b"");
    map.insert("ключ-é".as_bytes(), &[0, 255, 7]);
    map
}

#[test]
fn a_version_round_trips_through_bytes() {
    let map = sample_map();
    let bytes = map.to_bytes();
    let copy = HamtMap::from_bytes(&bytes).unwrap();
    check_invariants(&copy);
    assert_eq!(copy.len(), map.len());
    for (k, v) in map.iter() {
        assert_eq!(copy.get(k), Some(v));
    }
    assert_eq!(copy.to_bytes(), bytes, "equal maps must serialise identically");
    let empty = HamtMap::new().to_bytes();
    assert_eq!(empty.len(), HEADER_LEN);
    assert!(HamtMap::from_bytes(&empty).unwrap().is_empty());
    let colliding = HamtMap::with_hasher(|_| 3).with_inserted(b"b", &[2]).with_inserted(b"a", &[1]);
    let copy = HamtMap::from_bytes_with_hasher(&colliding.to_bytes(), |_| 3).unwrap();
    assert_eq!(copy.get(b"a"), Some(&[1u8][..]));
}

#[test]
fn corrupt_buffers_are_rejected_with_an_error() {
    let good = sample_map().to_bytes();
    let decode = |bytes: &[u8]| HamtMap::from_bytes(bytes).map(|m| m.len());
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
    let mut dup = HamtMap::new().with_inserted(b"a", &[1]).to_bytes();
    dup[8] = 2;
    dup.extend_from_slice(&[1, b'a', 1, 1]);
    assert_eq!(decode(&dup), Err(DecodeError::DuplicateKey));
    let mut overlong = HamtMap::new().to_bytes();
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
    let set = |out: &mut Vec<u8>, key: &[u8], value: &[u8]| {
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
    let base = HamtMap::new().with_inserted(b"c", b"0");
    let mut next = base.clone();
    assert_eq!(next.apply_changes(&changes), Ok(4));
    assert_eq!(next.get(b"a"), Some(&b"3"[..]));
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

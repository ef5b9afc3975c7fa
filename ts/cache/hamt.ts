/**
 * The pure-TypeScript twin of `crates/hamt`: a persistent hash array mapped trie in the CHAMP
 * layout, from string keys to any values.
 *
 * It behaves like the Rust crate: the same fixed hash over the UTF-8 bytes of a key, the same
 * canonical shape, the same iteration order, and the same byte format, so a snapshot written by
 * one restores in the other. Values here are JavaScript values (the state itself), not bytes:
 * a cache read then costs no decoding. `toBytes`/`fromBytes` take the value codec.
 *
 * | operation                    | time                       | notes                               |
 * |------------------------------|----------------------------|-------------------------------------|
 * | `size`                       | O(1)                       | stored                              |
 * | `get`, `has`                 | O(log32 n), at most 8 levels | hashes the key each call          |
 * | `set`, `delete`              | O(log32 n)                 | copies one path; returns a version  |
 * | `transient()`, `persistent()`| O(1)                       | batch edits in place, then freeze   |
| transient `update`           | O(log32 n)                 | read and write with one key hash    |
 * | `forEach`, `entries`         | O(n)                       | deterministic order                 |
 * | `toBytes`, `fromBytes`       | O(n)                       |                                     |
 *
 * Invariants: every node but the root holds at least two entries in its subtree (a node left with
 * one entry is replaced by that entry, inline in its parent), so one set of keys has one shape and
 * one iteration order whatever its history; keys with equal 32-bit hashes share a collision node at
 * depth 7, sorted by UTF-8 bytes. A version never changes after it is returned.
 *
 * @module
 */
import { SnapshotCorruptError } from '../errors.ts'

/** Hash of a string key; the default is {@link hashKey}. Tests pass a constant to force collisions. */
export type KeyHasher = (key: string) => number

/**
 * The fixed key hash shared with the Rust crate: 32-bit FNV-1a over the UTF-8 bytes of the key,
 * then the MurmurHash3 `fmix32` finaliser. Lone surrogates hash as U+FFFD, as `TextEncoder`
 * encodes them.
 *
 * @example
 * ```ts
 * hashKey('user:1') // 0x692440ef, the same as hamt::hash(b"user:1") in Rust
 * ```
 */
export function hashKey(key: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    let c = key.charCodeAt(i)
    if (c < 0x80) {
      h = Math.imul(h ^ c, 0x01000193)
      continue
    }
    if (c < 0x800) {
      h = Math.imul(h ^ (0xc0 | (c >> 6)), 0x01000193)
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const next = key.charCodeAt(i + 1)
        if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          i++
          c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00)
          h = Math.imul(h ^ (0xf0 | (c >> 18)), 0x01000193)
          h = Math.imul(h ^ (0x80 | ((c >> 12) & 0x3f)), 0x01000193)
        } else {
          c = 0xfffd
          h = Math.imul(h ^ (0xe0 | (c >> 12)), 0x01000193)
        }
      } else {
        h = Math.imul(h ^ (0xe0 | (c >> 12)), 0x01000193)
      }
      h = Math.imul(h ^ (0x80 | ((c >> 6) & 0x3f)), 0x01000193)
    }
    h = Math.imul(h ^ (0x80 | (c & 0x3f)), 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}

/** Orders strings by their UTF-8 bytes (UTF-16 order differs once surrogates meet U+E000..U+FFFF). */
export function compareUtf8(a: string, b: string): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i)
    let y = b.charCodeAt(i)
    if (x === y) continue
    if (x >= 0xd800) x = x <= 0xdfff ? x + 0x2000 : x - 0x800
    if (y >= 0xd800) y = y <= 0xdfff ? y + 0x2000 : y - 0x800
    return x - y
  }
  return a.length - b.length
}

const BITS = 5
const MASK = 31
/** Shift at which the hash is used up: nodes at this depth are collision nodes. */
const HASH_BITS = 32

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333)
  x = (x + (x >>> 4)) & 0x0f0f0f0f
  return Math.imul(x, 0x01010101) >>> 24
}

/**
 * One trie node. Above depth 7 `datamap`/`nodemap` mark the slots of inline entries and of
 * children; `data` holds entries as flat key, value pairs in slot order. At depth 7 (shift 35) the
 * node is a collision node: bitmaps are unused and `data` is sorted by key.
 */
class Node {
  // `declare`: assigned in the constructor only. Plain field declarations would be defined (as
  // undefined) before the constructor runs, which made building nodes several times slower here
  // (StateCache bulk apply at 1M entities: 1.3 ms -> 10.7 ms per transaction).
  declare datamap: number
  declare nodemap: number
  declare data: unknown[]
  declare nodes: Node[]
  /** The transient allowed to edit this node in place; null once frozen. */
  declare owner: object | null
  constructor(datamap: number, nodemap: number, data: unknown[], nodes: Node[], owner: object | null) {
    this.datamap = datamap
    this.nodemap = nodemap
    this.data = data
    this.nodes = nodes
    this.owner = owner
  }

  editableBy(owner: object | null): Node {
    if (owner !== null && this.owner === owner) return this
    return new Node(this.datamap, this.nodemap, this.data.slice(), this.nodes.slice(), owner)
  }
}

const EMPTY_ROOT = new Node(0, 0, [], [], null)

/** Index of `key` in a collision node's flat pairs, or -1 (values are skipped: they may be strings). */
function collisionIndex(data: unknown[], key: string): number {
  for (let i = 0; i < data.length; i += 2) if (data[i] === key) return i
  return -1
}

/** Set by `insert`: 1 when a key was added, 0 when it was replaced or unchanged. */
let added = 0
/** Set by `remove`: whether the key was present. */
let removed = false

function merge(k1: string, v1: unknown, h1: number, k2: string, v2: unknown, h2: number, shift: number, owner: object | null): Node {
  if (shift >= HASH_BITS) {
    const data = compareUtf8(k1, k2) < 0 ? [k1, v1, k2, v2] : [k2, v2, k1, v1]
    return new Node(0, 0, data, [], owner)
  }
  const b1 = 1 << ((h1 >>> shift) & MASK)
  const b2 = 1 << ((h2 >>> shift) & MASK)
  if (b1 !== b2) {
    const data = (b1 >>> 0) < (b2 >>> 0) ? [k1, v1, k2, v2] : [k2, v2, k1, v1]
    return new Node(b1 | b2, 0, data, [], owner)
  }
  return new Node(0, b1, [], [merge(k1, v1, h1, k2, v2, h2, shift + BITS, owner)], owner)
}

function insert(node: Node, shift: number, hash: number, key: string, value: unknown, owner: object | null, hasher: KeyHasher): Node {
  if (shift >= HASH_BITS) {
    const data = node.data
    let i = 0
    while (i < data.length && compareUtf8(data[i] as string, key) < 0) i += 2
    if (i < data.length && data[i] === key) {
      if (data[i + 1] === value) return node
      const edited = node.editableBy(owner)
      edited.data[i + 1] = value
      return edited
    }
    added = 1
    const edited = node.editableBy(owner)
    edited.data.splice(i, 0, key, value)
    return edited
  }
  const bit = 1 << ((hash >>> shift) & MASK)
  if (node.datamap & bit) {
    const i = 2 * popcount(node.datamap & (bit - 1))
    const existing = node.data[i] as string
    if (existing === key) {
      if (node.data[i + 1] === value) return node
      const edited = node.editableBy(owner)
      edited.data[i + 1] = value
      return edited
    }
    added = 1
    const child = merge(existing, node.data[i + 1], hasher(existing), key, value, hash, shift + BITS, owner)
    const edited = node.editableBy(owner)
    edited.data.splice(i, 2)
    edited.datamap ^= bit
    edited.nodes.splice(popcount(edited.nodemap & (bit - 1)), 0, child)
    edited.nodemap |= bit
    return edited
  }
  if (node.nodemap & bit) {
    const j = popcount(node.nodemap & (bit - 1))
    const child = node.nodes[j]!
    const next = insert(child, shift + BITS, hash, key, value, owner, hasher)
    if (next === child) return node
    const edited = node.editableBy(owner)
    edited.nodes[j] = next
    return edited
  }
  added = 1
  const edited = node.editableBy(owner)
  edited.data.splice(2 * popcount(node.datamap & (bit - 1)), 0, key, value)
  edited.datamap |= bit
  return edited
}

function remove(node: Node, shift: number, hash: number, key: string, owner: object | null): Node {
  if (shift >= HASH_BITS) {
    const i = collisionIndex(node.data, key)
    if (i < 0) return node
    removed = true
    const edited = node.editableBy(owner)
    edited.data.splice(i, 2)
    return edited
  }
  const bit = 1 << ((hash >>> shift) & MASK)
  if (node.datamap & bit) {
    const i = 2 * popcount(node.datamap & (bit - 1))
    if (node.data[i] !== key) return node
    removed = true
    const edited = node.editableBy(owner)
    edited.data.splice(i, 2)
    edited.datamap ^= bit
    return edited
  }
  if (node.nodemap & bit) {
    const j = popcount(node.nodemap & (bit - 1))
    const child = node.nodes[j]!
    const next = remove(child, shift + BITS, hash, key, owner)
    if (!removed) return node
    const edited = node.editableBy(owner)
    if (next.nodemap === 0 && next.data.length === 2) {
      // The child holds one entry now: inline it here so the shape stays canonical.
      edited.nodes.splice(j, 1)
      edited.nodemap ^= bit
      edited.data.splice(2 * popcount(edited.datamap & (bit - 1)), 0, next.data[0], next.data[1])
      edited.datamap |= bit
    } else {
      edited.nodes[j] = next
    }
    return edited
  }
  return node
}

/** Marks "absent" for `has`, where undefined may be a stored value. */
const MISSING = Symbol('missing')

function getValue(root: Node, key: string, hash: number, missing: unknown): unknown {
  let node = root
  for (let shift = 0; shift < HASH_BITS; shift += BITS) {
    const bit = 1 << ((hash >>> shift) & MASK)
    if (node.datamap & bit) {
      const i = 2 * popcount(node.datamap & (bit - 1))
      return node.data[i] === key ? node.data[i + 1] : missing
    }
    if (!(node.nodemap & bit)) return missing
    node = node.nodes[popcount(node.nodemap & (bit - 1))]!
  }
  const i = collisionIndex(node.data, key)
  return i >= 0 ? node.data[i + 1] : missing
}

function each(node: Node, fn: (value: unknown, key: string) => void): void {
  const data = node.data
  for (let i = 0; i < data.length; i += 2) fn(data[i + 1], data[i] as string)
  const nodes = node.nodes
  for (let j = 0; j < nodes.length; j++) each(nodes[j]!, fn)
}

function* walk(node: Node): Generator<[string, unknown]> {
  const data = node.data
  for (let i = 0; i < data.length; i += 2) yield [data[i] as string, data[i + 1]]
  for (const child of node.nodes) yield* walk(child)
}

/**
 * A persistent map from string keys to values of type `V`: every edit returns a new version and
 * leaves the old one as it was; unchanged nodes are shared. See the module documentation for the
 * complexity table and invariants.
 *
 * @example
 * ```ts
 * const v1 = HamtMap.empty<number>().set('order:1', 10)
 * const v2 = v1.set('order:2', 20)
 * v1.size // 1: the old version is unchanged
 * v2.get('order:2') // 20
 * ```
 */
export class HamtMap<V> {
  /** @internal */ declare readonly root: Node
  declare readonly size: number
  /** @internal */ declare readonly hasher: KeyHasher
  private constructor(root: Node, size: number, hasher: KeyHasher) {
    this.root = root
    this.size = size
    this.hasher = hasher
  }

  /**
   * The empty map; `hasher` replaces {@link hashKey} (for tests that force collisions).
   *
   * @example
   * ```ts
   * HamtMap.empty<string>().size // 0
   * ```
   */
  static empty<V>(hasher: KeyHasher = hashKey): HamtMap<V> {
    return new HamtMap<V>(EMPTY_ROOT, 0, hasher)
  }

  /** @internal */
  static fromRoot<V>(root: Node, size: number, hasher: KeyHasher): HamtMap<V> {
    return new HamtMap<V>(root, size, hasher)
  }

  /**
   * The value under `key`, or undefined.
   *
   * @example
   * ```ts
   * HamtMap.empty<number>().set('a', 1).get('a') // 1
   * ```
   */
  get(key: string): V | undefined {
    return getValue(this.root, key, this.hasher(key), undefined) as V | undefined
  }

  /**
   * Whether `key` is present (also when its value is undefined).
   *
   * @example
   * ```ts
   * HamtMap.empty<number>().set('a', 1).has('a') // true
   * ```
   */
  has(key: string): boolean {
    return getValue(this.root, key, this.hasher(key), MISSING) !== MISSING
  }

  /**
   * A new version with `key` set to `value`. Setting the value a key already holds (`===`)
   * returns this same version.
   *
   * @example
   * ```ts
   * const next = HamtMap.empty<number>().set('a', 1)
   * ```
   */
  set(key: string, value: V): HamtMap<V> {
    added = 0
    const root = insert(this.root, 0, this.hasher(key), key, value, null, this.hasher)
    return root === this.root ? this : new HamtMap<V>(root, this.size + added, this.hasher)
  }

  /**
   * A new version without `key` (this same version when the key is absent).
   *
   * @example
   * ```ts
   * HamtMap.empty<number>().set('a', 1).delete('a').size // 0
   * ```
   */
  delete(key: string): HamtMap<V> {
    removed = false
    const root = remove(this.root, 0, this.hasher(key), key, null)
    return removed ? new HamtMap<V>(root, this.size - 1, this.hasher) : this
  }

  /**
   * A transient copy for a batch of edits: nodes it creates are edited in place by later edits of
   * the same batch instead of being copied again. This version is not affected.
   *
   * @example
   * ```ts
   * const t = HamtMap.empty<number>().transient()
   * for (let i = 0; i < 1000; i++) t.set(`k${i}`, i)
   * const map = t.persistent() // map.size === 1000
   * ```
   */
  transient(): TransientHamtMap<V> {
    return new TransientHamtMap<V>(this.root, this.size, this.hasher)
  }

  /**
   * Calls `fn` for each entry in the map's deterministic order (the fastest way to visit all).
   *
   * @example
   * ```ts
   * let sum = 0
   * HamtMap.empty<number>().set('a', 1).set('b', 2).forEach((v) => { sum += v })
   * ```
   */
  forEach(fn: (value: V, key: string) => void): void {
    each(this.root, fn as (value: unknown, key: string) => void)
  }

  /**
   * The entries in the map's deterministic order (the same order as the Rust crate).
   *
   * @example
   * ```ts
   * [...HamtMap.empty<number>().set('a', 1).entries()] // [['a', 1]]
   * ```
   */
  entries(): IterableIterator<[string, V]> {
    return walk(this.root) as IterableIterator<[string, V]>
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries()
  }
}

/**
 * A map being edited in place by one batch. Obtain one with {@link HamtMap.transient}; finish with
 * {@link TransientHamtMap.persistent}, after which it can no longer be edited.
 */
export class TransientHamtMap<V> {
  private owner: object | null = {}

  private declare root: Node
  private declare count: number
  private declare readonly hasher: KeyHasher
  /** @internal */
  constructor(root: Node, count: number, hasher: KeyHasher) {
    this.root = root
    this.count = count
    this.hasher = hasher
  }

  /** Number of entries now. */
  get size(): number {
    return this.count
  }

  /** The value under `key` in the batch so far. */
  get(key: string): V | undefined {
    return getValue(this.root, key, this.hasher(key), undefined) as V | undefined
  }

  /** Whether `key` is present in the batch so far. */
  has(key: string): boolean {
    return getValue(this.root, key, this.hasher(key), MISSING) !== MISSING
  }

  /** Sets `key` to `value` in place. */
  set(key: string, value: V): this {
    const owner = this.editor()
    added = 0
    this.root = insert(this.root, 0, this.hasher(key), key, value, owner, this.hasher)
    this.count += added
    return this
  }

  /**
   * Replaces the value under `key` by `fn(current value, arg)` in place, hashing the key once;
   * `fn` returning undefined removes the key. If `fn` throws, the transient is unchanged. (`arg`
   * spares callers a closure per call.)
   */
  update<A>(key: string, fn: (value: V | undefined, arg: A) => V | undefined, arg: A): this {
    const owner = this.editor()
    const hash = this.hasher(key)
    const next = fn(getValue(this.root, key, hash, undefined) as V | undefined, arg)
    if (next === undefined) {
      removed = false
      this.root = remove(this.root, 0, hash, key, owner)
      if (removed) this.count--
    } else {
      added = 0
      this.root = insert(this.root, 0, hash, key, next, owner, this.hasher)
      this.count += added
    }
    return this
  }

  /** Removes `key` in place; returns whether it was present. */
  delete(key: string): boolean {
    const owner = this.editor()
    removed = false
    this.root = remove(this.root, 0, this.hasher(key), key, owner)
    if (removed) this.count--
    return removed
  }

  /** Freezes the batch into a persistent version; the transient cannot be edited afterwards. */
  persistent(): HamtMap<V> {
    this.owner = null
    return HamtMap.fromRoot<V>(this.root, this.count, this.hasher)
  }

  private editor(): object {
    if (this.owner === null) throw new Error('TransientHamtMap: edited after persistent()')
    return this.owner
  }
}

/**
 * Builds the canonical trie of `keys[i] -> values[i]` in one pass per level, without the path
 * copies of one insert per key: restoring a snapshot this way is several times faster. Throws
 * SnapshotCorruptError on a duplicate key.
 *
 * @internal
 */
export function buildHamt<V>(keys: string[], values: V[], hasher: KeyHasher = hashKey): HamtMap<V> {
  const n = keys.length
  if (n === 0) return HamtMap.empty<V>(hasher)
  const hashes = new Int32Array(n)
  for (let i = 0; i < n; i++) hashes[i] = hasher(keys[i]!)
  const order = new Int32Array(n)
  for (let i = 0; i < n; i++) order[i] = i
  const scratch = new Int32Array(n)
  const root = buildNode(keys, values, hashes, order, scratch, 0, n, 0)
  return HamtMap.fromRoot<V>(root, n, hasher)
}

function buildNode(keys: string[], values: unknown[], hashes: Int32Array, order: Int32Array, scratch: Int32Array, start: number, end: number, shift: number): Node {
  if (shift >= HASH_BITS) {
    const members: number[] = []
    for (let i = start; i < end; i++) members.push(order[i]!)
    members.sort((a, b) => compareUtf8(keys[a]!, keys[b]!))
    const data: unknown[] = []
    for (let i = 0; i < members.length; i++) {
      const m = members[i]!
      if (i > 0 && keys[members[i - 1]!] === keys[m]) throw new SnapshotCorruptError('duplicate key in snapshot')
      data.push(keys[m], values[m])
    }
    return new Node(0, 0, data, [], null)
  }
  // Counting sort of this range by slot, so each slot's entries are contiguous and in slot order.
  const counts = new Int32Array(33)
  for (let i = start; i < end; i++) counts[((hashes[order[i]!]! >>> shift) & MASK) + 1]!++
  for (let s = 0; s < 32; s++) counts[s + 1]! += counts[s]!
  const next = counts.slice(0, 32)
  for (let i = start; i < end; i++) {
    const e = order[i]!
    scratch[start + next[(hashes[e]! >>> shift) & MASK]!++] = e
  }
  order.set(scratch.subarray(start, end), start)
  let datamap = 0
  let nodemap = 0
  const data: unknown[] = []
  const nodes: Node[] = []
  for (let s = 0; s < 32; s++) {
    const from = start + counts[s]!
    const to = start + counts[s + 1]!
    if (to - from === 1) {
      datamap |= 1 << s
      const e = order[from]!
      data.push(keys[e], values[e])
    } else if (to - from > 1) {
      nodemap |= 1 << s
      nodes.push(buildNode(keys, values, hashes, order, scratch, from, to, shift + BITS))
    }
  }
  return new Node(datamap, nodemap, data, nodes, null)
}

// --- byte format (identical to crates/hamt `to_bytes`) ---------------------------------------

const MAGIC = [0x52, 0x53, 0x48, 0x4d] // "RSHM"
const FORMAT_VERSION = 1
const HEADER_LEN = 16
const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

/** A growable byte buffer with LEB128 varints, used by the snapshot and change-batch formats. */
export class ByteWriter {
  bytes: Uint8Array
  length = 0

  constructor(capacity = 1024) {
    this.bytes = new Uint8Array(capacity)
  }

  private reserve(extra: number): void {
    if (this.length + extra <= this.bytes.length) return
    let capacity = this.bytes.length * 2
    while (capacity < this.length + extra) capacity *= 2
    const grown = new Uint8Array(capacity)
    grown.set(this.bytes.subarray(0, this.length))
    this.bytes = grown
  }

  byte(value: number): void {
    this.reserve(1)
    this.bytes[this.length++] = value
  }

  varint(value: number): void {
    this.reserve(5)
    while (value >= 0x80) {
      this.bytes[this.length++] = (value & 0x7f) | 0x80
      value >>>= 7
    }
    this.bytes[this.length++] = value
  }

  /** A varint byte length followed by the UTF-8 bytes of `text`. */
  string(text: string): void {
    // Fast path: ASCII needs no encoder and has a known length.
    let ascii = true
    for (let i = 0; i < text.length; i++) {
      if (text.charCodeAt(i) >= 0x80) {
        ascii = false
        break
      }
    }
    if (ascii) {
      this.varint(text.length)
      this.reserve(text.length)
      for (let i = 0; i < text.length; i++) this.bytes[this.length++] = text.charCodeAt(i)
      return
    }
    this.blob(encoder.encode(text))
  }

  /** A varint length followed by the bytes. */
  blob(bytes: Uint8Array): void {
    this.varint(bytes.length)
    this.reserve(bytes.length)
    this.bytes.set(bytes, this.length)
    this.length += bytes.length
  }

  /** The bytes written so far (a view, not a copy). */
  finish(): Uint8Array {
    return this.bytes.subarray(0, this.length)
  }
}

/** Reads the formats {@link ByteWriter} writes; every malformation is a SnapshotCorruptError. */
export class ByteReader {
  declare at: number
  declare readonly bytes: Uint8Array
  constructor(bytes: Uint8Array, at = 0) {
    this.bytes = bytes
    this.at = at
  }

  get done(): boolean {
    return this.at === this.bytes.length
  }

  byte(): number {
    if (this.at >= this.bytes.length) throw new SnapshotCorruptError('buffer is truncated')
    return this.bytes[this.at++]!
  }

  varint(): number {
    let value = 0
    for (let i = 0; i < 5; i++) {
      const byte = this.byte()
      value += (byte & 0x7f) * 2 ** (7 * i)
      if ((byte & 0x80) === 0) {
        if (value > 0xffffffff) break
        return value
      }
    }
    throw new SnapshotCorruptError('malformed length prefix')
  }

  blob(): Uint8Array {
    const length = this.varint()
    const end = this.at + length
    if (end > this.bytes.length) throw new SnapshotCorruptError('buffer is truncated')
    const slice = this.bytes.subarray(this.at, end)
    this.at = end
    return slice
  }

  string(): string {
    const bytes = this.blob()
    let ascii = true
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i]! >= 0x80) {
        ascii = false
        break
      }
    }
    if (ascii && bytes.length < 64) return String.fromCharCode(...bytes)
    try {
      return decoder.decode(bytes)
    } catch (cause) {
      throw new SnapshotCorruptError('a key is not valid UTF-8', { cause })
    }
  }
}

/**
 * The whole version as one buffer in the crates/hamt format: "RSHM", version 1, three zero bytes,
 * the entry count as u64 little-endian, then per entry a varint key length, the UTF-8 key, a varint
 * value length and the value bytes from `encodeValue`.
 *
 * @example
 * ```ts
 * const bytes = toBytes(HamtMap.empty<string>().set('k', 'v'), (v) => new TextEncoder().encode(v))
 * ```
 */
export function toBytes<V>(map: HamtMap<V>, encodeValue: (value: V) => Uint8Array): Uint8Array {
  const out = new ByteWriter(HEADER_LEN + map.size * 32)
  for (const b of MAGIC) out.byte(b)
  out.byte(FORMAT_VERSION)
  out.byte(0)
  out.byte(0)
  out.byte(0)
  let count = map.size
  for (let i = 0; i < 8; i++) {
    out.byte(count % 256)
    count = Math.floor(count / 256)
  }
  map.forEach((value, key) => {
    out.string(key)
    out.blob(encodeValue(value))
  })
  return out.finish()
}

/**
 * Decodes a buffer written by {@link toBytes} or by the Rust crate. Corrupt input (bad magic or
 * version, truncation, bad lengths, invalid UTF-8 keys, duplicate keys, trailing bytes) throws
 * SnapshotCorruptError; so does an error thrown by `decodeValue`.
 *
 * @example
 * ```ts
 * const map = fromBytes(bytes, (b) => new TextDecoder().decode(b))
 * ```
 */
export function fromBytes<V>(bytes: Uint8Array, decodeValue: (bytes: Uint8Array) => V, hasher: KeyHasher = hashKey): HamtMap<V> {
  if (bytes.length < HEADER_LEN) {
    const magicOk = bytes.length < 4 || MAGIC.every((b, i) => bytes[i] === b)
    throw new SnapshotCorruptError(magicOk ? 'buffer is truncated' : 'not a ringstate HAMT buffer (bad magic)')
  }
  if (!MAGIC.every((b, i) => bytes[i] === b)) throw new SnapshotCorruptError('not a ringstate HAMT buffer (bad magic)')
  if (bytes[4] !== FORMAT_VERSION) throw new SnapshotCorruptError(`unsupported HAMT format version ${bytes[4]}`)
  if (bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) throw new SnapshotCorruptError('reserved header bytes are not zero')
  let count = 0
  for (let i = 7; i >= 0; i--) count = count * 256 + bytes[8 + i]!
  if (count > (bytes.length - HEADER_LEN) / 2) throw new SnapshotCorruptError('buffer is truncated')
  const reader = new ByteReader(bytes, HEADER_LEN)
  const keys: string[] = new Array(count)
  const values: V[] = new Array(count)
  for (let n = 0; n < count; n++) {
    keys[n] = reader.string()
    try {
      values[n] = decodeValue(reader.blob())
    } catch (cause) {
      if (cause instanceof SnapshotCorruptError) throw cause
      throw new SnapshotCorruptError(`the value of entry ${n} could not be decoded`, { cause })
    }
  }
  if (!reader.done) throw new SnapshotCorruptError('unexpected bytes after the last entry')
  return buildHamt(keys, values, hasher)
}

import { describe, expect, test } from 'bun:test'
import { ErrorCode } from '../errors.ts'
import { HamtMap, compareUtf8, fromBytes, hashKey, toBytes, type KeyHasher } from './hamt.ts'

/** SplitMix32-style seeded PRNG so every run explores the same operations. */
function rng(seed: number): (n: number) => number {
  let state = seed >>> 0
  return (n) => {
    state = (state + 0x9e3779b9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return ((z ^ (z >>> 16)) >>> 0) % n
  }
}

interface RawNode { datamap: number; nodemap: number; data: unknown[]; nodes: RawNode[] }

/** Walks the trie and checks the invariants documented in hamt.ts. */
function checkInvariants(map: HamtMap<unknown>, hasher: KeyHasher = hashKey): void {
  const walk = (node: RawNode, shift: number, isRoot: boolean): number => {
    if (shift >= 32) {
      expect(node.nodes.length).toBe(0)
      expect(node.data.length).toBeGreaterThanOrEqual(4)
      const keys = node.data.filter((_, i) => i % 2 === 0) as string[]
      for (let i = 1; i < keys.length; i++) expect(compareUtf8(keys[i - 1]!, keys[i]!)).toBeLessThan(0)
      expect(new Set(keys.map(hasher)).size).toBe(1)
      return keys.length
    }
    expect(node.datamap & node.nodemap).toBe(0)
    expect(node.data.length).toBe(2 * popcount(node.datamap))
    expect(node.nodes.length).toBe(popcount(node.nodemap))
    for (let i = 0; i < node.data.length; i += 2) {
      const bit = 1 << ((hasher(node.data[i] as string) >>> shift) & 31)
      expect(node.datamap & bit).not.toBe(0)
      expect(2 * popcount(node.datamap & (bit - 1))).toBe(i)
    }
    let total = node.data.length / 2
    for (const child of node.nodes) total += walk(child, shift + 5, false)
    if (!isRoot) expect(total).toBeGreaterThanOrEqual(2)
    return total
  }
  expect(walk((map as unknown as { root: RawNode }).root, 0, true)).toBe(map.size)
}

function popcount(x: number): number {
  let n = 0
  for (let b = 0; b < 32; b++) if (x & (1 << b)) n++
  return n
}

function modelBased(hasher: KeyHasher, ops: number, keySpace: number, seed: number, transient: boolean): void {
  const next = rng(seed)
  let map = HamtMap.empty<number>(hasher)
  const model = new Map<string, number>()
  for (let step = 0; step < ops; step++) {
    const key = `entity:${next(keySpace)}`
    const op = next(10)
    if (op < 5) {
      const value = next(1_000_000)
      map = transient ? map.transient().set(key, value).persistent() : map.set(key, value)
      model.set(key, value)
    } else if (op < 8) {
      if (transient) {
        const t = map.transient()
        expect(t.delete(key)).toBe(model.has(key))
        map = t.persistent()
      } else {
        map = map.delete(key)
      }
      model.delete(key)
    } else {
      expect(map.get(key)).toBe(model.get(key))
      expect(map.has(key)).toBe(model.has(key))
    }
    expect(map.size).toBe(model.size)
    if (step % 997 === 0) {
      checkInvariants(map, hasher)
      expect(new Map(map.entries())).toEqual(model)
    }
  }
  for (const key of [...model.keys()]) {
    map = map.delete(key)
    model.delete(key)
  }
  checkInvariants(map, hasher)
  expect(map.size).toBe(0)
}

describe('HamtMap (TypeScript twin)', () => {
  test('it matches a Map over 100k random persistent operations', () => {
    modelBased(hashKey, 100_000, 5_000, 1, false)
  })

  test('it matches a Map when edits go through transients', () => {
    modelBased(hashKey, 20_000, 2_000, 2, true)
  })

  test('it matches a Map when every hash collides', () => {
    modelBased(() => 0xdeadbeef, 3_000, 150, 3, false)
  })

  test('it matches a Map with only sixteen distinct hashes', () => {
    modelBased((k) => (hashKey(k) & 0x8000000f) >>> 0, 10_000, 1_000, 4, false)
  })

  test('one set of keys has one shape and one order whatever its history', () => {
    const hasher: KeyHasher = (k) => (hashKey(k) & 0xc00003ff) >>> 0
    const keys = Array.from({ length: 3000 }, (_, i) => `k${i}`)
    let direct = HamtMap.empty<number>(hasher)
    for (const key of keys.slice(0, 1000)) direct = direct.set(key, 1)
    const next = rng(5)
    const churn = HamtMap.empty<number>(hasher).transient()
    for (let i = 0; i < 20_000; i++) churn.set(keys[next(3000)]!, 1)
    for (const key of keys.slice(1000)) churn.delete(key)
    for (const key of keys.slice(0, 1000)) churn.set(key, 1)
    const churned = churn.persistent()
    checkInvariants(churned, hasher)
    expect([...churned.entries()]).toEqual([...direct.entries()])
  })

  test('old versions are unchanged by later edits, transient ones included', () => {
    const versions: [HamtMap<number>, Map<string, number>][] = []
    let map = HamtMap.empty<number>()
    const model = new Map<string, number>()
    const next = rng(6)
    for (let round = 0; round < 40; round++) {
      versions.push([map, new Map(model)])
      const t = map.transient()
      for (let i = 0; i < 200; i++) {
        const key = `e${next(1000)}`
        if (next(3) === 0) {
          t.delete(key)
          model.delete(key)
        } else {
          const value = next(1000)
          t.set(key, value)
          model.set(key, value)
        }
      }
      map = t.persistent()
    }
    for (const [version, expected] of versions) {
      checkInvariants(version)
      expect(new Map(version.entries())).toEqual(expected)
    }
  })

  test('transient update reads the batch so far, writes or removes, and keeps its base intact', () => {
    const next = rng(7)
    let base = HamtMap.empty<number>()
    for (let i = 0; i < 3000; i++) base = base.set(`entity:${i}`, i)
    const model = new Map(base.entries())
    const t = base.transient()
    for (let step = 0; step < 20_000; step++) {
      const key = `entity:${next(4000)}`
      const remove = next(4) === 0
      t.update(key, (value, step) => {
        expect(value).toBe(model.get(key))
        return remove ? undefined : (value ?? 0) + step
      }, step)
      if (remove) model.delete(key)
      else model.set(key, (model.get(key) ?? 0) + step)
      expect(t.size).toBe(model.size)
    }
    expect(() => t.update('entity:1', () => {
      throw new Error('refused')
    }, undefined)).toThrow('refused')
    const map = t.persistent()
    checkInvariants(map)
    expect(new Map(map.entries())).toEqual(model)
    expect(base.size).toBe(3000)
    expect(base.get('entity:2999')).toBe(2999)
  })

  test('a transient cannot be edited after persistent()', () => {
    const t = HamtMap.empty<number>().transient()
    t.set('a', 1)
    t.persistent()
    expect(() => t.set('b', 2)).toThrow('TransientHamtMap: edited after persistent()')
  })

  test('setting the same value or deleting an absent key returns the same version', () => {
    const map = HamtMap.empty<number>().set('a', 1)
    expect(map.set('a', 1)).toBe(map)
    expect(map.delete('zzz')).toBe(map)
  })

  test('undefined is a storable value that has() sees', () => {
    const map = HamtMap.empty<undefined>().set('a', undefined)
    expect(map.has('a')).toBe(true)
    expect(map.has('b')).toBe(false)
    expect(map.size).toBe(1)
  })

  test('the hash is the documented function shared with the Rust crate', () => {
    // The same reference values as crates/hamt/src/tests.rs.
    expect(hashKey('')).toBe(0xab3e7c0b)
    expect(hashKey('user:1')).toBe(0x692440ef)
    expect(hashKey('é')).toBe(0x8e4756c7)
    // Multi-byte and astral characters hash their UTF-8 bytes.
    const bytesHash = (bytes: Uint8Array) => {
      let h = 0x811c9dc5
      for (const b of bytes) h = Math.imul(h ^ b, 0x01000193)
      h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35); h ^= h >>> 16
      return h >>> 0
    }
    for (const key of ['ключ', '日本語', 'a😀b', 'lone\ud800x', 'end\udc00']) {
      expect(hashKey(key)).toBe(bytesHash(new TextEncoder().encode(key)))
    }
  })

  test('compareUtf8 orders strings as their UTF-8 bytes', () => {
    const keys = ['a', '\uffff', '😀', 'ab', '', '\ue000', 'é']
    const byBytes = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    expect([...keys].sort(compareUtf8)).toEqual(byBytes)
  })
})

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder()
const encodeString = (v: string) => utf8.encode(v)
const decodeString = (b: Uint8Array) => fromUtf8.decode(b)

function sampleMap(): HamtMap<string> {
  const t = HamtMap.empty<string>().transient()
  for (let i = 0; i < 2000; i++) t.set(`entity:${i}`, `{"n":${i}}`)
  t.set('', '')
  t.set('ключ-é', 'ü')
  return t.persistent()
}

describe('HamtMap byte format', () => {
  test('a version round-trips through bytes', () => {
    const map = sampleMap()
    const bytes = toBytes(map, encodeString)
    const copy = fromBytes(bytes, decodeString)
    checkInvariants(copy)
    expect(new Map(copy.entries())).toEqual(new Map(map.entries()))
    expect(toBytes(copy, encodeString)).toEqual(bytes)
    expect(fromBytes(toBytes(HamtMap.empty<string>(), encodeString), decodeString).size).toBe(0)
  })

  test('restoring builds the same shape as inserting, collisions included', () => {
    for (const hasher of [hashKey, (k: string) => (hashKey(k) & 0xc000000f) >>> 0, () => 7] as KeyHasher[]) {
      const next = rng(9)
      const inserted = HamtMap.empty<string>(hasher).transient()
      for (let i = 0; i < 2000; i++) inserted.set(`key:${next(1500)}`, `v${i}`)
      const map = inserted.persistent()
      const copy = fromBytes(toBytes(map, encodeString), decodeString, hasher)
      checkInvariants(copy, hasher)
      expect([...copy.entries()]).toEqual([...map.entries()])
    }
  })

  test('the bytes match the layout of crates/hamt', () => {
    const bytes = toBytes(HamtMap.empty<string>().set('k', 'v'), encodeString)
    expect([...bytes]).toEqual([0x52, 0x53, 0x48, 0x4d, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0x6b, 1, 0x76])
  })

  test('corrupt buffers throw SNAPSHOT_CORRUPT and never anything else', () => {
    const good = toBytes(sampleMap(), encodeString)
    const decode = (bytes: Uint8Array) => fromBytes(bytes, decodeString)
    const failure = (bytes: Uint8Array) => {
      try {
        decode(bytes)
      } catch (error) {
        return error as { code: string; message: string }
      }
      return undefined
    }
    const variants: [string, (b: Uint8Array) => Uint8Array][] = [
      ['bad magic', (b) => { b[0] = 0x58; return b }],
      ['unsupported HAMT format version 9', (b) => { b[4] = 9; return b }],
      ['reserved header bytes are not zero', (b) => { b[6] = 1; return b }],
      ['unexpected bytes after the last entry', (b) => Uint8Array.of(...b, 0)],
      ['buffer is truncated', (b) => { b.fill(0xff, 8, 16); return b }],
    ]
    for (const [message, mutate] of variants) {
      const error = failure(mutate(good.slice()))
      expect(error?.code).toBe(ErrorCode.SNAPSHOT_CORRUPT)
      expect(error?.message).toContain(message)
    }
    const dup = Uint8Array.of(...toBytes(HamtMap.empty<string>().set('a', 'x'), encodeString), 1, 0x61, 1, 0x79)
    dup[8] = 2
    expect(failure(dup)?.message).toContain('duplicate key')
    const badUtf8 = Uint8Array.of(...toBytes(HamtMap.empty<string>(), encodeString), 1, 0xff, 0)
    badUtf8[8] = 1
    expect(failure(badUtf8)?.message).toContain('not valid UTF-8')
    for (let cut = 0; cut < good.length; cut += 41) expect(failure(good.subarray(0, cut))?.code).toBe(ErrorCode.SNAPSHOT_CORRUPT)
    const next = rng(7)
    for (let i = 0; i < 300; i++) {
      const bad = good.slice()
      bad[next(bad.length)]! ^= 1 << next(8)
      const error = failure(bad)
      if (error !== undefined) expect(error.code).toBe(ErrorCode.SNAPSHOT_CORRUPT)
    }
  })
})

import { describe, expect, test } from 'bun:test'
import { ErrorCode } from '../errors.ts'
import { loadNative } from '../native/index.ts'
import { typescriptBackend, type CacheBackend, type MapVersion } from './backend.ts'
import { jsonCodec } from './codec.ts'
import { nativeBackend } from './native-backend.ts'

type State = { n: number; tag: string }

/** Every backend this process can run: the TypeScript twin always, the native one when it loads. */
const addon = loadNative()
const backends: CacheBackend<State>[] = [typescriptBackend<State>(jsonCodec)]
if (addon !== null && typeof addon.HamtMap === 'function') backends.push(nativeBackend<State>(addon, jsonCodec))

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

/** One transaction through a draft: `changes` maps an id to its new state, or to undefined to delete it. */
function apply(backend: CacheBackend<State>, base: MapVersion<State>, changes: Map<string, State | undefined>): MapVersion<State> {
  const draft = backend.edit(base)
  for (const [id, state] of changes) draft.update(id, () => state, undefined)
  return draft.commit()
}

function contents(version: MapVersion<State>): [string, State][] {
  const out: [string, State][] = []
  version.forEach((state, id) => out.push([id, state]))
  return out
}

test(`RINGSTATE_NATIVE=${process.env.RINGSTATE_NATIVE ?? ''} runs the native backend exactly when the addon loads`, () => {
  expect(backends.length).toBe(addon === null ? 1 : 2)
  if (process.env.RINGSTATE_NATIVE === '1') expect(backends.map((b) => b.kind)).toEqual(['typescript', 'native'])
  if (process.env.RINGSTATE_NATIVE === '0') expect(backends.map((b) => b.kind)).toEqual(['typescript'])
})

for (const backend of backends) {
  describe(`the ${backend.kind} cache backend`, () => {
    test('batches of changes match a Map, and every old version stays as it was', () => {
      const next = rng(11)
      let version = backend.empty()
      const model = new Map<string, State>()
      const history: [MapVersion<State>, Map<string, State>][] = []
      for (let batch = 0; batch < 200; batch++) {
        const changes = new Map<string, State | undefined>()
        for (let i = 0; i < 50; i++) {
          const id = next(5) === 0 ? `ключ-${next(100)}` : `entity:${next(800)}`
          const state = next(4) === 0 ? undefined : { n: next(1000), tag: 'é😀' }
          changes.set(id, state)
          if (state === undefined) model.delete(id)
          else model.set(id, state)
        }
        version = apply(backend, version, changes)
        history.push([version, new Map(model)])
        expect(version.size).toBe(model.size)
      }
      for (const [id, state] of model) {
        expect(version.get(id)).toEqual(state)
        expect(version.has(id)).toBe(true)
      }
      expect(version.has('missing')).toBe(false)
      expect(version.get('missing')).toBeUndefined()
      for (const [old, expected] of history.filter((_, i) => i % 37 === 0)) {
        expect(new Map(contents(old))).toEqual(expected)
      }
    })

    test('a draft reads its own edits, and its base is unchanged whether it is dropped or committed', () => {
      const base = apply(backend, backend.empty(), new Map([['a', { n: 1, tag: '' }], ['b', { n: 2, tag: '' }]]))
      const dropped = backend.edit(base)
      dropped.update('a', (state, by) => ({ n: state!.n + by, tag: 'x' }), 9)
      dropped.update('b', () => undefined, undefined)
      dropped.update('c', () => ({ n: 3, tag: '' }), undefined)
      expect([dropped.get('a'), dropped.get('b'), dropped.get('c')]).toEqual([{ n: 10, tag: 'x' }, undefined, { n: 3, tag: '' }])
      const draft = backend.edit(base)
      draft.update('a', () => undefined, undefined)
      expect(() => draft.update('b', () => {
        throw new Error('apply failed')
      }, undefined)).toThrow('apply failed')
      const next = draft.commit()
      expect(contents(base)).toEqual(contents(apply(backend, backend.empty(), new Map([['a', { n: 1, tag: '' }], ['b', { n: 2, tag: '' }]]))))
      expect(contents(next)).toEqual([['b', { n: 2, tag: '' }]])
    })

    test('commits that consume their base build the same versions as copying commits', () => {
      const next = rng(12)
      let copied = backend.empty()
      let consumed = backend.empty()
      for (let batch = 0; batch < 100; batch++) {
        const changes = new Map<string, State | undefined>()
        for (let i = 0; i < 40; i++) changes.set(`entity:${next(500)}`, next(5) === 0 ? undefined : { n: next(1000), tag: 'ü' })
        copied = apply(backend, copied, changes)
        const draft = backend.edit(consumed)
        for (const [id, state] of changes) draft.update(id, () => state, undefined)
        const base = consumed
        consumed = draft.commit(true)
        if (backend.kind === 'native') {
          // The base's memory now belongs to the new version: using it is a misuse, and says so.
          expect(() => base.get('entity:1')).toThrow(expect.objectContaining({ code: ErrorCode.NATIVE_INVALID_ARGUMENT }))
        }
      }
      expect(contents(consumed)).toEqual(contents(copied))
      expect(backend.toBytes(consumed)).toEqual(backend.toBytes(copied))
    })

    test('releasing a version leaves the versions that share its nodes intact', () => {
      const first = apply(backend, backend.empty(), new Map([['a', { n: 1, tag: '' }], ['b', { n: 2, tag: '' }]]))
      const second = apply(backend, first, new Map([['c', { n: 3, tag: '' }]]))
      backend.release(first)
      backend.release(first)
      expect(contents(second)).toEqual(contents(apply(backend, backend.empty(), new Map([['a', { n: 1, tag: '' }], ['b', { n: 2, tag: '' }], ['c', { n: 3, tag: '' }]]))))
      if (backend.kind === 'native') {
        expect(() => first.size).toThrow(expect.objectContaining({ code: ErrorCode.NATIVE_INVALID_ARGUMENT }))
      }
    })

    test('reads return states of any size, larger than any read buffer included', () => {
      const big = { n: 1, tag: 'x'.repeat(5000) + 'é' }
      const huge = { n: 2, tag: 'y'.repeat(70_000) }
      const version = apply(backend, backend.empty(), new Map([['big', big], ['small', { n: 0, tag: '' }], ['huge', huge]]))
      expect(version.get('small')).toEqual({ n: 0, tag: '' })
      expect(version.get('big')).toEqual(big)
      expect(version.get('huge')).toEqual(huge)
      expect(version.get('small')).toEqual({ n: 0, tag: '' })
    })

    test('a version round-trips through bytes and restores in every other backend', () => {
      const changes = new Map<string, State | undefined>()
      for (let i = 0; i < 3000; i++) changes.set(`entity:${i}`, { n: i, tag: i % 2 ? 'ü' : '' })
      changes.set('', { n: -1, tag: 'empty id' })
      const version = apply(backend, backend.empty(), changes)
      const bytes = backend.toBytes(version)
      for (const other of backends) {
        const copy = other.fromBytes(bytes)
        expect(contents(copy)).toEqual(contents(version))
        // Same hash, same canonical shape: every backend writes the very same bytes.
        expect(other.toBytes(copy)).toEqual(bytes)
      }
    })

    test('corrupt bytes are SNAPSHOT_CORRUPT', () => {
      const bytes = backend.toBytes(apply(backend, backend.empty(), new Map([['a', { n: 1, tag: '' }]])))
      for (const bad of [bytes.subarray(0, bytes.length - 1), Uint8Array.of(...bytes, 0), new Uint8Array(3)]) {
        expect(() => backend.fromBytes(bad)).toThrow(expect.objectContaining({ code: ErrorCode.SNAPSHOT_CORRUPT }))
      }
    })
  })
}

test.skipIf(addon === null)('a malformed change buffer leaves a version usable even when asked to consume it', () => {
  const base = new addon!.HamtMap().withChanges(Uint8Array.of(1, 1, 0x61, 1, 0x78))
  expect(() => base.withChanges(Uint8Array.of(7), true)).toThrow(expect.objectContaining({ code: ErrorCode.NATIVE_INVALID_ARGUMENT }))
  expect(base.size).toBe(1)
  expect(base.get('a')).toEqual(Uint8Array.of(0x78))
})

test.skipIf(addon === null)('a custom codec may keep the bytes it decodes: each native read gets its own copy', () => {
  const raw = { encode: (bytes: Uint8Array) => bytes, decode: (bytes: Uint8Array) => bytes }
  const backend = nativeBackend<Uint8Array>(addon!, raw)
  const draft = backend.edit(backend.empty())
  draft.update('a', () => Uint8Array.of(1, 2, 3), undefined)
  draft.update('b', () => Uint8Array.of(9, 9, 9), undefined)
  const version = draft.commit()
  const a = version.get('a')
  version.get('b')
  expect(a).toEqual(Uint8Array.of(1, 2, 3))
})

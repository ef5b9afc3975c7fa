// The addon smoke cases, shared by the three runners so Bun, Node and Deno check exactly the same
// behaviour: native.test.ts (bun:test), smoke.node.mjs (node:test) and smoke.deno.ts (Deno.test).
// Plain JavaScript with node: imports, which all three runtimes load. Each case throws (through
// node:assert) on failure; the runner registers one test per case.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'

/** The workspace version in Cargo.toml, which the addon reports as version(). */
export function cargoVersion() {
  const manifest = readFileSync(new URL('../../Cargo.toml', import.meta.url), 'utf8')
  const match = /\[workspace\.package\][^[]*?\bversion\s*=\s*"([^"]+)"/.exec(manifest)
  if (!match) throw new Error('no [workspace.package] version in Cargo.toml')
  return match[1]
}

/** Asserts that `fn` throws an instance of `kind` whose `code` is `code`. */
function throwsCoded(fn, kind, code, messagePart) {
  assert.throws(fn, (error) => {
    assert.ok(error instanceof kind, `expected ${kind.name}, got ${error?.constructor?.name}: ${error?.message}`)
    assert.equal(error.code, code)
    if (messagePart) assert.ok(error.message.includes(messagePart), `message ${JSON.stringify(error.message)} lacks ${JSON.stringify(messagePart)}`)
    return true
  })
}

/**
 * Calls `member` (a prototype method, or a getter) with `receiver` as `this` and asserts that the
 * call is refused with a TypeError. Our own check answers with code NATIVE_INVALID_ARGUMENT; Node
 * checks the receiver of a class method itself (V8 signature check) before native code runs and
 * throws "Illegal invocation" without a code, which `runtimeChecksMethods` allows.
 */
function refusesReceiver(member, receiver, label, runtimeChecksMethods) {
  assert.throws(() => member.fn.call(receiver, 'key', new Uint8Array(4)), (error) => {
    assert.ok(error instanceof TypeError, `${label}: expected TypeError, got ${error?.constructor?.name}: ${error?.message}`)
    if (runtimeChecksMethods && member.isMethod && error.code === undefined) {
      assert.match(error.message, /Illegal invocation/, label)
    } else {
      assert.equal(error.code, 'NATIVE_INVALID_ARGUMENT', `${label}: ${error.message}`)
    }
    return true
  }, label)
}

/** Every native method and getter on a class prototype, as { name, fn, isMethod }. */
function prototypeMembers(Class) {
  return Object.getOwnPropertyNames(Class.prototype)
    .filter((name) => name !== 'constructor')
    .map((name) => {
      const descriptor = Object.getOwnPropertyDescriptor(Class.prototype, name)
      return { name, fn: descriptor.get ?? descriptor.value, isMethod: descriptor.get === undefined }
    })
}

/**
 * The cases, as [sentence, fn] pairs.
 * @param {import('./addon.ts').NativeTestAddon} addon the test build (with `diagnostics`)
 * @param {{ production?: import('./addon.ts').NativeAddon, runtimeChecksMethods?: boolean }} [options]
 *   `production`: the published build, loaded beside the test build (a second copy of the library
 *   in the process); `runtimeChecksMethods`: the runtime refuses a foreign `this` for class methods
 *   before native code runs (Node).
 * @returns {Array<[string, () => void]>}
 */
export function smokeCases(addon, options = {}) {
  const d = addon.diagnostics
  const { production, runtimeChecksMethods = false } = options
  return [
    ['version() is the Cargo workspace version', () => {
      assert.equal(addon.version(), cargoVersion())
    }],
    ['numbers round-trip exactly, including -0, infinities and NaN', () => {
      for (const x of [0, -0, 1.5, -1e308, 5e-324, Infinity, -Infinity, NaN]) assert.ok(Object.is(d.echoNumber(x), x), String(x))
      for (const x of [-(2 ** 31), 0, 2 ** 31 - 1]) assert.equal(d.echoInt32(x), x)
      for (const x of [0, 2 ** 32 - 1]) assert.equal(d.echoUint32(x), x)
      for (const x of [Number.MIN_SAFE_INTEGER, -1, Number.MAX_SAFE_INTEGER]) assert.equal(d.echoInt64(x), x)
    }],
    ['integers out of range or fractional are a RangeError, never truncated', () => {
      throwsCoded(() => d.echoInt32(2 ** 31), RangeError, 'NATIVE_INVALID_ARGUMENT', 'argument 0')
      throwsCoded(() => d.echoInt32(1.5), RangeError, 'NATIVE_INVALID_ARGUMENT')
      throwsCoded(() => d.echoUint32(-1), RangeError, 'NATIVE_INVALID_ARGUMENT')
      throwsCoded(() => d.echoInt64(2 ** 53), RangeError, 'NATIVE_INVALID_ARGUMENT')
    }],
    ['a value of the wrong type is a TypeError naming what was expected', () => {
      throwsCoded(() => d.echoNumber('1'), TypeError, 'NATIVE_INVALID_ARGUMENT', 'expected a number, got string')
      throwsCoded(() => d.echoString(1), TypeError, 'NATIVE_INVALID_ARGUMENT', 'expected a string')
      throwsCoded(() => d.echoBoolean(1), TypeError, 'NATIVE_INVALID_ARGUMENT', 'expected a boolean')
      throwsCoded(() => d.echoBigInt64(1), TypeError, 'NATIVE_INVALID_ARGUMENT', 'expected a bigint')
    }],
    ['bigints round-trip across the whole 64-bit range and reject what does not fit', () => {
      for (const x of [-(2n ** 63n), -1n, 0n, 2n ** 63n - 1n]) assert.equal(d.echoBigInt64(x), x)
      for (const x of [0n, 2n ** 64n - 1n]) assert.equal(d.echoBigUint64(x), x)
      throwsCoded(() => d.echoBigInt64(2n ** 63n), RangeError, 'NATIVE_INVALID_ARGUMENT')
      throwsCoded(() => d.echoBigUint64(-1n), RangeError, 'NATIVE_INVALID_ARGUMENT')
    }],
    ['strings round-trip as UTF-8, including NUL, astral characters and long strings', () => {
      const long = 'ab€'.repeat(50_000)
      for (const s of ['', 'plain', 'héllo wörld', '🎉 emoji', 'inner\0nul', long]) assert.equal(d.echoString(s), s)
    }],
    ['booleans, undefined, null and optional values convert', () => {
      assert.equal(d.echoBoolean(true), true)
      assert.equal(d.echoBoolean(false), false)
      assert.equal(d.makeUndefined(), undefined)
      assert.equal(d.makeNull(), null)
      assert.equal(d.echoOptionalNumber(undefined), undefined)
      assert.equal(d.echoOptionalNumber(null), undefined)
      assert.equal(d.echoOptionalNumber(2.5), 2.5)
    }],
    ['typeOf reports each value kind', () => {
      const kinds = [[undefined, 'undefined'], [null, 'null'], [true, 'boolean'], [1, 'number'], ['s', 'string'],
        [Symbol('s'), 'symbol'], [{}, 'object'], [[], 'object'], [() => 1, 'function'], [1n, 'bigint']]
      assert.deepEqual(kinds.map(([v]) => d.typeOf(v)), kinds.map(([, name]) => name))
    }],
    ['arrays and objects are read and built element by element and property by property', () => {
      const items = [1, 'a', null, { x: 1 }]
      const copy = d.echoArray(items)
      assert.deepEqual(copy, items)
      assert.notEqual(copy, items)
      assert.equal(copy[3], items[3])
      assert.deepEqual(d.copyProperties({ a: 1, b: 'x', c: undefined }, ['a', 'b', 'c', 'missing']), { a: 1, b: 'x', c: undefined })
      throwsCoded(() => d.echoArray({ length: 1 }), TypeError, 'NATIVE_INVALID_ARGUMENT')
    }],
    ['calls with more than eight arguments see every argument', () => {
      assert.equal(d.sumArgs(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), 66)
      assert.equal(d.sumArgs(), 0)
    }],
    ['every typed array kind round-trips into a new array of the same kind', () => {
      const cases = [
        ['echoInt8Array', Int8Array.of(-128, 0, 127)],
        ['echoUint8Array', Uint8Array.of(0, 1, 255)],
        ['echoInt16Array', Int16Array.of(-32768, 32767)],
        ['echoUint16Array', Uint16Array.of(0, 65535)],
        ['echoInt32Array', Int32Array.of(-(2 ** 31), 2 ** 31 - 1)],
        ['echoUint32Array', Uint32Array.of(0, 2 ** 32 - 1)],
        ['echoFloat32Array', Float32Array.of(1.5, -0.25)],
        ['echoFloat64Array', Float64Array.of(Math.PI, -1e300)],
        ['echoBigInt64Array', BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n)],
        ['echoBigUint64Array', BigUint64Array.of(0n, 2n ** 64n - 1n)],
      ]
      for (const [name, input] of cases) {
        const output = d[name](input)
        assert.equal(output.constructor, input.constructor, name)
        assert.deepEqual(Array.from(output), Array.from(input), name)
        assert.notEqual(output.buffer, input.buffer, name)
      }
      assert.deepEqual(Array.from(d.echoFloat64Array(new Float64Array(0))), [])
    }],
    ['typed array views are read and written in place, honouring their byte offset', () => {
      const buffer = new Float64Array([100, 1, 2, 3, 100]).buffer
      assert.equal(d.sumFloat64Array(new Float64Array(buffer, 8, 3)), 6)
      const ints = new Int32Array(8)
      d.fillInt32Array(ints.subarray(2, 5), 7)
      assert.deepEqual(Array.from(ints), [0, 0, 7, 7, 7, 0, 0, 0])
      assert.deepEqual(Array.from(d.echoUint8Array(Uint8ClampedArray.of(3, 4))), [3, 4])
      throwsCoded(() => d.sumFloat64Array(new Float32Array(2)), TypeError, 'NATIVE_INVALID_ARGUMENT', 'Float64Array')
      throwsCoded(() => d.sumFloat64Array([1, 2]), TypeError, 'NATIVE_INVALID_ARGUMENT')
    }],
    ['ArrayBuffers are read in place and returned as copies', () => {
      const input = Uint8Array.of(9, 8, 7).buffer
      const output = d.echoArrayBuffer(input)
      assert.ok(output instanceof ArrayBuffer)
      assert.notEqual(output, input)
      assert.deepEqual(Array.from(new Uint8Array(output)), [9, 8, 7])
      throwsCoded(() => d.echoArrayBuffer(new Uint8Array(2)), TypeError, 'NATIVE_INVALID_ARGUMENT', 'ArrayBuffer')
    }],
    ['an external ArrayBuffer over native memory shows JavaScript writes to native code', () => {
      const filled = d.externalBuffer(8, 0xab)
      assert.equal(filled.byteLength, 8)
      assert.deepEqual(Array.from(new Uint8Array(filled)), Array(8).fill(0xab))
      const { id, buffer } = d.registeredExternalBuffer(16)
      const bytes = new Uint8Array(buffer)
      bytes.set([1, 2, 3], 0)
      bytes[15] = 255
      assert.deepEqual(Array.from(d.readExternal(id)), [1, 2, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255])
      new Int32Array(buffer, 4, 1)[0] = -1
      assert.deepEqual(Array.from(d.readExternal(id).subarray(4, 8)), [255, 255, 255, 255])
      assert.equal(d.releaseExternal(id), true)
      assert.equal(d.releaseExternal(id), false)
      assert.equal(d.externalBuffer(0).byteLength, 0)
    }],
    ['a wrapped class owns a Rust value reachable from its methods and getters', () => {
      const counter = new d.Counter(41)
      assert.equal(counter.increment(), 42)
      assert.equal(counter.value, 42)
      assert.equal(new d.Counter().value, 0)
      const fork = counter.fork()
      assert.ok(fork instanceof d.Counter)
      assert.equal(fork.increment(), 43)
      assert.equal(counter.value, 42)
      const zero = d.Counter.zero()
      assert.ok(zero instanceof d.Counter)
      assert.equal(zero.value, 0)
      const before = d.counterStats().created
      void new d.Counter(1)
      assert.equal(d.counterStats().created, before + 1)
    }],
    ['misusing a wrapped class is a TypeError, and re-entering one object is NATIVE_BORROWED', () => {
      assert.throws(() => d.Counter(1), TypeError)
      assert.throws(() => d.Counter.prototype.increment.call({}), TypeError)
      const counter = new d.Counter(0)
      throwsCoded(() => counter.visit(() => counter.increment()), Error, 'NATIVE_BORROWED')
      assert.equal(counter.increment(), 1)
      assert.equal(counter.visit(() => 'ok'), 'ok')
    }],
    ['a foreign object (another class\'s instance, a plain object, another addon\'s wrap) is refused by every native method with NATIVE_INVALID_ARGUMENT', () => {
      const classes = [
        { label: 'HamtMap', Class: addon.HamtMap, own: new addon.HamtMap(), other: new d.Counter(1), twin: production && new production.HamtMap() },
        { label: 'Counter', Class: d.Counter, own: new d.Counter(1), other: new addon.HamtMap() },
      ]
      if (production) {
        classes.push({ label: 'the published HamtMap', Class: production.HamtMap, own: new production.HamtMap(), other: new d.Counter(1), twin: new addon.HamtMap() })
      }
      for (const { label, Class, own, other, twin } of classes) {
        const foreign = [
          ['an instance of another native class', other],
          ['a plain object', {}],
          ['an object wrapped by another addon', d.wrapForeign({})],
          ['an object whose prototype is an instance', Object.create(own)],
          ['a primitive', 1],
        ]
        // The same class from another copy of the library (the published build beside the test
        // build) is foreign too: its objects hold that copy's Rust type.
        if (twin) foreign.push(['an instance from another copy of the addon', twin])
        const members = prototypeMembers(Class)
        assert.ok(members.length >= 4, `${label} has methods`)
        for (const member of members) {
          for (const [what, receiver] of foreign) refusesReceiver(member, receiver, `${label}.${member.name} on ${what}`, runtimeChecksMethods)
        }
      }
      // Functions taking arguments refuse a wrapped object where they expect a number or bytes.
      const noArguments = new Set(['version', 'ringCount', 'HamtMap'])
      const functions = Object.keys(addon).filter((name) => typeof addon[name] === 'function' && !noArguments.has(name))
      assert.ok(functions.includes('hamtFromBytes') && functions.includes('ringWrite'), functions.join())
      for (const name of functions) {
        for (const argument of [new d.Counter(1), new addon.HamtMap(), d.wrapForeign({})]) {
          throwsCoded(() => addon[name](argument, argument, argument), TypeError, 'NATIVE_INVALID_ARGUMENT')
        }
      }
      // The real instances still work.
      const map = addon.HamtMap.prototype.withChanges.call(new addon.HamtMap(), Uint8Array.of(1, 1, 107, 1, 118))
      assert.deepEqual(Array.from(map.get('k')), [118])
      assert.equal(new d.Counter(1).increment(), 2)
    }],
    ['shared memory (a SharedArrayBuffer) is copied before native code reads it and refused where it would write in place', () => {
      const shared = new Uint8Array(new SharedArrayBuffer(4))
      shared.set([1, 2, 3, 4])
      assert.equal(d.isShared(shared), true)
      assert.equal(d.isShared(new Uint8Array(4)), false)
      assert.deepEqual(Array.from(d.echoUint8Array(shared)), [1, 2, 3, 4])
      assert.equal(d.sumFloat64Array(new Float64Array(new SharedArrayBuffer(16)).fill(1.5)), 3)
      throwsCoded(() => d.fillInt32Array(new Int32Array(new SharedArrayBuffer(8)), 1), TypeError, 'NATIVE_INVALID_ARGUMENT', 'SharedArrayBuffer')
      throwsCoded(() => d.echoArrayBuffer(new SharedArrayBuffer(2)), TypeError, 'NATIVE_INVALID_ARGUMENT')
      const map = new addon.HamtMap().withChanges(Uint8Array.of(1, 1, 107, 1, 118))
      const bytes = new Uint8Array(map.toBytes())
      const sharedBytes = new Uint8Array(new SharedArrayBuffer(bytes.length))
      sharedBytes.set(bytes)
      assert.deepEqual(Array.from(addon.hamtFromBytes(sharedBytes).get('k')), [118])
      const sharedChanges = new Uint8Array(new SharedArrayBuffer(5))
      sharedChanges.set([1, 1, 120, 1, 121])
      assert.deepEqual(Array.from(map.withChanges(sharedChanges).get('x')), [121])
      throwsCoded(() => map.getInto('k', sharedBytes), TypeError, 'NATIVE_INVALID_ARGUMENT', 'SharedArrayBuffer')
    }],
    ['errors thrown by native code are Errors with the requested kind and code', () => {
      throwsCoded(() => d.throwError('Error', 'BUFFER_FULL', 'ring is full'), Error, 'BUFFER_FULL', 'ring is full')
      throwsCoded(() => d.throwError('TypeError', 'INVALID_OPTIONS', 'bad'), TypeError, 'INVALID_OPTIONS')
      throwsCoded(() => d.throwError('RangeError', 'INVALID_OPTIONS', 'far'), RangeError, 'INVALID_OPTIONS')
    }],
    ['a Rust panic arrives as an Error with code NATIVE_PANIC and the addon keeps working', () => {
      throwsCoded(() => d.panic('deliberate'), Error, 'NATIVE_PANIC', 'deliberate')
      throwsCoded(() => new d.Counter(0).visit(() => d.panic('nested')), Error, 'NATIVE_PANIC', 'nested')
      assert.equal(d.echoNumber(1), 1)
    }],
    ['JavaScript exceptions thrown under a native call pass through unchanged', () => {
      const thrown = new Error('from JavaScript')
      assert.throws(() => d.callFunction(() => { throw thrown }), (error) => error === thrown)
      assert.equal(d.callFunction((a, b) => a + b, 2, 3), 5)
    }],
    ['the process-global counter accumulates', () => {
      const start = d.sharedCounterAdd(0)
      assert.equal(d.sharedCounterAdd(3), start + 3)
      assert.equal(d.sharedCounterAdd(0), start + 3)
    }],
  ]
}

import { describe, expect, test } from 'bun:test'
import { defaultStoreOptions } from './types.ts'
import {
  newEventId,
  normalizeEvents,
  prepareAppend,
  resolveOptions,
  validateCondition,
  validateQuery,
  validateReadOptions,
} from './validate.ts'

const options = defaultStoreOptions

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (error) {
    return (error as { code?: string }).code
  }
  return undefined
}

describe('resolveOptions', () => {
  test('fills in the defaults when nothing is given', () => {
    expect(resolveOptions()).toEqual({ ...defaultStoreOptions, onProjectorError: expect.any(Function) })
  })
  test('keeps given values and ignores unknown keys', () => {
    const resolved = resolveOptions({ streamBatchSize: 7, other: 'x' } as never)
    expect(resolved).toEqual({ ...defaultStoreOptions, streamBatchSize: 7, onProjectorError: expect.any(Function) })
  })
  test('rejects zero, negative, fractional and non-number values', () => {
    for (const bad of [0, -1, 1.5, '10', Number.NaN]) {
      expect(codeOf(() => resolveOptions({ maxAppendBatch: bad as never }))).toBe('INVALID_OPTIONS')
    }
  })
})

describe('normalizeEvents', () => {
  test('turns one event into its storage form with a random id', () => {
    const [event] = normalizeEvents({ type: 'A', tags: ['x:1', 'y:2', 'x:1'], data: { n: 1 } }, options)
    expect(event).toEqual({
      type: 'A',
      tags: ['x:1', 'y:2'],
      data: { n: 1 },
      dataJson: '{"n":1}',
      metadata: {},
      metadataJson: '{}',
      id: expect.any(String),
      idGiven: false,
    })
    expect(event!.id).toMatch(/^[0-9a-f-]{36}$/)
  })
  test('stores undefined data as null and keeps the given id and metadata', () => {
    const [event] = normalizeEvents([{ type: 'A', id: 'cmd-1', metadata: { user: 'u' } }], options)
    expect(event).toMatchObject({ data: null, dataJson: 'null', id: 'cmd-1', idGiven: true, metadataJson: '{"user":"u"}' })
  })
  test('rejects an empty list', () => {
    expect(codeOf(() => normalizeEvents([], options))).toBe('INVALID_EVENT')
  })
  test('rejects bad types', () => {
    for (const type of ['', 'x'.repeat(129), 3, undefined]) {
      expect(codeOf(() => normalizeEvents({ type } as never, options))).toBe('INVALID_EVENT')
    }
    expect(codeOf(() => normalizeEvents({ type: 'x'.repeat(128) }, options))).toBeUndefined()
  })
  test('rejects bad tags', () => {
    for (const tags of [[''], ['x'.repeat(257)], [1], 'a:b']) {
      expect(codeOf(() => normalizeEvents({ type: 'A', tags } as never, options))).toBe('INVALID_EVENT')
    }
  })
  test('rejects data that JSON cannot represent faithfully', () => {
    const cycle: Record<string, unknown> = {}
    cycle.self = cycle
    const bad = [
      { big: 1n },
      cycle,
      { f: () => 1 },
      { s: Symbol('s') },
      { n: Number.NaN },
      [Number.POSITIVE_INFINITY],
      () => 1,
      // Deep inside plain data, and behind a toJSON (whose result JSON.stringify uses).
      { a: [{ b: [1, 2, { f: () => 1 }] }] },
      { a: { b: [Symbol('s')] } },
      { a: [[[-Infinity]]] },
      { toJSON: () => ({ n: Number.NaN }) },
      { a: { toJSON: () => [() => 1] } },
    ]
    for (const data of bad) {
      expect(codeOf(() => normalizeEvents({ type: 'A', data }, options))).toBe('INVALID_EVENT')
    }
  })
  test('stores plain data of any depth as JSON.stringify writes it, shared references included', () => {
    let deep: unknown = { leaf: [1, 'two', null, true] }
    for (let i = 0; i < 200; i++) deep = i % 2 === 0 ? { i, next: deep } : [deep, i]
    const shared = { x: 1 }
    for (const data of [deep, { a: shared, b: [shared, shared] }, { u: undefined, list: [undefined] }]) {
      const [event] = normalizeEvents({ type: 'A', data }, options)
      expect(event!.dataJson).toBe(JSON.stringify(data))
    }
  })
  test('rejects metadata that is not a plain object', () => {
    for (const metadata of [[], 'x', null, { big: 2n }]) {
      expect(codeOf(() => normalizeEvents({ type: 'A', metadata } as never, options))).toBe('INVALID_EVENT')
    }
  })
  test('rejects events over maxEventBytes counting UTF-8 bytes', () => {
    const small = { ...options, maxEventBytes: 20 }
    // '"éééééééé"' is 10 characters but 18 bytes; with '{}' metadata that is exactly 20 bytes.
    expect(codeOf(() => normalizeEvents({ type: 'A', data: 'éééééééé' }, small))).toBeUndefined()
    expect(codeOf(() => normalizeEvents({ type: 'A', data: 'ééééééééé' }, small))).toBe('INVALID_EVENT')
    expect(codeOf(() => normalizeEvents({ type: 'A', data: '😀😀😀😀' }, small))).toBeUndefined()
    expect(codeOf(() => normalizeEvents({ type: 'A', data: '😀😀😀😀😀' }, small))).toBe('INVALID_EVENT')
  })
  test('rejects more than maxEventsPerAppend events', () => {
    const small = { ...options, maxEventsPerAppend: 2 }
    expect(codeOf(() => normalizeEvents([{ type: 'A' }, { type: 'A' }], small))).toBeUndefined()
    expect(codeOf(() => normalizeEvents([{ type: 'A' }, { type: 'A' }, { type: 'A' }], small))).toBe('INVALID_EVENT')
  })
  test('rejects the same id twice in one append and bad ids', () => {
    expect(codeOf(() => normalizeEvents([{ type: 'A', id: 'x' }, { type: 'B', id: 'x' }], options))).toBe('INVALID_EVENT')
    expect(codeOf(() => normalizeEvents({ type: 'A', id: '' }, options))).toBe('INVALID_EVENT')
    expect(codeOf(() => normalizeEvents({ type: 'A', id: 5 } as never, options))).toBe('INVALID_EVENT')
  })
})

describe('validateQuery', () => {
  test("accepts 'all' and items naming a type or a tag", () => {
    expect(codeOf(() => validateQuery('all'))).toBeUndefined()
    expect(codeOf(() => validateQuery([{ types: ['A'] }, { tags: ['x:1'] }, { types: ['A'], tags: [] }]))).toBeUndefined()
  })
  test('rejects [] and items with neither types nor tags', () => {
    for (const query of [[], [{}], [{ types: [], tags: [] }], [{ types: ['A'] }, {}], 'some', null, [{ types: [''] }], [{ tags: 'x' }]]) {
      expect(codeOf(() => validateQuery(query as never))).toBe('INVALID_QUERY')
    }
  })
})

describe('validateCondition', () => {
  test('accepts no condition and a condition with or without after', () => {
    expect(codeOf(() => validateCondition(undefined))).toBeUndefined()
    expect(codeOf(() => validateCondition({ failIfEventsMatch: 'all' }))).toBeUndefined()
    expect(codeOf(() => validateCondition({ failIfEventsMatch: [{ types: ['A'] }], after: 0n }))).toBeUndefined()
  })
  test('rejects a bad query inside, a negative or non-bigint after, and non-objects', () => {
    for (const condition of [{ failIfEventsMatch: [] }, { failIfEventsMatch: 'all', after: -1n }, { failIfEventsMatch: 'all', after: 3 }, 'all', null]) {
      expect(codeOf(() => validateCondition(condition as never))).toBe('INVALID_CONDITION')
    }
  })
})

describe('validateReadOptions', () => {
  test('accepts the documented options', () => {
    expect(codeOf(() => validateReadOptions({ after: 5n, limit: 0, backwards: true, signal: new AbortController().signal }))).toBeUndefined()
  })
  test('rejects values of the wrong type or out of range', () => {
    for (const bad of [{ after: 1 }, { after: -1n }, { limit: -1 }, { limit: 1.5 }, { backwards: 'yes' }, { signal: {} }]) {
      expect(codeOf(() => validateReadOptions(bad as never))).toBe('INVALID_OPTIONS')
    }
  })
})

describe('generated ids and prepared appends', () => {
  test('generated event ids are version-7 UUIDs that sort by creation time', () => {
    const first = newEventId()
    // Wait for the next millisecond: within one millisecond the order is random.
    const created = Date.now()
    while (Date.now() === created) {}
    const second = newEventId()
    expect(first).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(first < second).toBe(true)
  })

  test('prepareAppend copies the condition, so changing the caller object later changes nothing', () => {
    const condition = { failIfEventsMatch: [{ tags: ['a:1'] }] as const, after: 3n }
    const prepared = prepareAppend({ type: 'T' }, condition, undefined, resolveOptions())
    condition.after = 9n
    expect(prepared.condition).toEqual({ failIfEventsMatch: [{ tags: ['a:1'] }], after: 3n })
    expect(prepared.events[0]!.idGiven).toBe(false)
  })

  test('prepareAppend rejects options that are not an object with INVALID_OPTIONS', () => {
    expect(() => prepareAppend({ type: 'T' }, undefined, 5 as never, resolveOptions())).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTIONS' }),
    )
  })
})

describe('store v2 limits and hooks', () => {
  test('onProjectorError must be a function; the default reports to stderr', () => {
    expect(codeOf(() => resolveOptions({ onProjectorError: 'log' } as never))).toBe('INVALID_OPTIONS')
    const hook = () => {}
    expect(resolveOptions({ onProjectorError: hook }).onProjectorError).toBe(hook)
    expect(typeof resolveOptions().onProjectorError).toBe('function')
  })

  test('maxAppendBytes counts the UTF-8 bytes of every event of the append', () => {
    const small = { ...options, maxAppendBytes: 100 }
    // 3 events of 30 characters of 'é' (2 bytes each) plus quotes: 62 bytes each, 186 in all.
    const events = Array.from({ length: 3 }, () => ({ type: 'A', data: 'é'.repeat(30) }))
    expect(codeOf(() => normalizeEvents(events, small))).toBe('INVALID_EVENT')
    expect(codeOf(() => normalizeEvents(events.slice(0, 1), small))).toBeUndefined()
    // ASCII under the limit exactly, though 3 bytes per character would pass it.
    const ascii = Array.from({ length: 2 }, () => ({ type: 'A', data: 'a'.repeat(46) }))
    expect(codeOf(() => normalizeEvents(ascii, small))).toBeUndefined()
  })

  test('maxAppendBytes stops serialising once the sum passes the limit', () => {
    let serialised = 0
    const counting = { toJSON: () => { serialised++; return 'x'.repeat(1000) } }
    const events = Array.from({ length: 1000 }, () => ({ type: 'A', data: counting }))
    expect(codeOf(() => normalizeEvents(events, { ...options, maxAppendBytes: 10_000 }))).toBe('INVALID_EVENT')
    expect(serialised).toBeLessThan(20)
  })

  test('NUL and lone surrogates are refused in types, tags, ids and query strings, not in data', () => {
    for (const event of [{ type: '\u0000' }, { type: 'a\ud800' }, { type: 'A', tags: ['\udc00'] }, { type: 'A', id: 'x\u0000' }]) {
      expect(codeOf(() => normalizeEvents(event, options))).toBe('INVALID_EVENT')
    }
    expect(codeOf(() => normalizeEvents({ type: 'A😀', tags: ['t:😀'], data: '\u0000\ud800' }, options))).toBeUndefined()
    expect(codeOf(() => validateQuery([{ types: ['\u0000'] }]))).toBe('INVALID_QUERY')
    expect(codeOf(() => validateCondition({ failIfEventsMatch: [{ tags: ['\ud800'] }] }))).toBe('INVALID_CONDITION')
  })

  test('queries and conditions hold at most maxQueryItems items', () => {
    const items = Array.from({ length: 101 }, () => ({ types: ['A'] }))
    expect(codeOf(() => validateQuery(items))).toBe('INVALID_QUERY')
    expect(codeOf(() => validateQuery(items.slice(1)))).toBeUndefined()
    expect(codeOf(() => validateQuery(items, 200))).toBeUndefined()
    expect(codeOf(() => validateCondition({ failIfEventsMatch: items }))).toBe('INVALID_CONDITION')
  })

  test('prepareAppend validates and copies the checkpoint option; before must be a bigint', () => {
    const prepared = prepareAppend({ type: 'T' }, undefined, { checkpoint: { name: 'c', position: 4n } }, resolveOptions())
    expect(prepared.checkpoint).toEqual({ name: 'c', position: 4n })
    expect(codeOf(() => prepareAppend({ type: 'T' }, undefined, { checkpoint: { name: 'c' } as never }, resolveOptions()))).toBe('INVALID_OPTIONS')
    expect(codeOf(() => validateReadOptions({ before: 3 as never }))).toBe('INVALID_OPTIONS')
    expect(codeOf(() => validateReadOptions({ before: 3n }))).toBeUndefined()
  })
})

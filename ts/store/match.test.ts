import { describe, expect, test } from 'bun:test'
import { matchesQuery, unionQueries } from './match.ts'

describe('matchesQuery', () => {
  test("'all' matches every event", () => {
    expect(matchesQuery('all', 'A', [])).toBe(true)
  })
  test('an item with types matches only those types', () => {
    expect(matchesQuery([{ types: ['A', 'B'] }], 'B', [])).toBe(true)
    expect(matchesQuery([{ types: ['A', 'B'] }], 'C', [])).toBe(false)
  })
  test('an item with tags needs every one of its tags on the event', () => {
    expect(matchesQuery([{ tags: ['x:1', 'y:2'] }], 'A', ['y:2', 'z:3', 'x:1'])).toBe(true)
    expect(matchesQuery([{ tags: ['x:1', 'y:2'] }], 'A', ['x:1'])).toBe(false)
  })
  test('an item with types and tags needs both', () => {
    const query = [{ types: ['A'], tags: ['x:1'] }]
    expect(matchesQuery(query, 'A', ['x:1'])).toBe(true)
    expect(matchesQuery(query, 'B', ['x:1'])).toBe(false)
    expect(matchesQuery(query, 'A', ['x:2'])).toBe(false)
  })
  test('a query matches when any of its items matches', () => {
    const query = [{ types: ['A'] }, { tags: ['x:1'] }]
    expect(matchesQuery(query, 'B', ['x:1'])).toBe(true)
    expect(matchesQuery(query, 'A', [])).toBe(true)
    expect(matchesQuery(query, 'B', ['x:2'])).toBe(false)
  })
  test('empty types in an item mean any type', () => {
    expect(matchesQuery([{ types: [], tags: ['x:1'] }], 'Z', ['x:1'])).toBe(true)
  })
})

describe('unionQueries', () => {
  test('concatenates the items of every query', () => {
    expect(unionQueries([[{ types: ['A'] }], [{ tags: ['x:1'] }, { types: ['B'] }]])).toEqual([
      { types: ['A'] },
      { tags: ['x:1'] },
      { types: ['B'] },
    ])
  })
  test("is 'all' when any query is 'all'", () => {
    expect(unionQueries([[{ types: ['A'] }], 'all'])).toBe('all')
  })
})

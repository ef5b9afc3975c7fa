/**
 * The DCB matching rule, in one place, for backends that filter in JavaScript (memory, the
 * condition check of a group commit, subscriptions) and for `project`.
 */
import type { Query, QueryItem } from './types.ts'

/**
 * Whether an event with this type and these tags matches the query: `'all'` matches everything;
 * otherwise any item must match, and an item matches when (it names no types, or the type is one
 * of them) and the tags include every tag of the item. The query is assumed valid.
 *
 * @example
 * matchesQuery([{ types: ['Enrolled'], tags: ['course:c1'] }], 'Enrolled', ['course:c1', 'student:s1']) // true
 * matchesQuery([{ tags: ['course:c1', 'student:s2'] }], 'Enrolled', ['course:c1', 'student:s1'])       // false
 */
export function matchesQuery(query: Query, type: string, tags: readonly string[]): boolean {
  if (query === 'all') return true
  for (let i = 0; i < query.length; i++) {
    if (matchesItem(query[i]!, type, tags)) return true
  }
  return false
}

function matchesItem(item: QueryItem, type: string, tags: readonly string[]): boolean {
  const types = item.types
  if (types !== undefined && types.length > 0 && !types.includes(type)) return false
  const wanted = item.tags
  if (wanted !== undefined) {
    for (let i = 0; i < wanted.length; i++) {
      if (!tags.includes(wanted[i]!)) return false
    }
  }
  return true
}

/**
 * The OR of several queries: `'all'` when any of them is `'all'`, otherwise every item of each.
 *
 * @example
 * unionQueries([[{ types: ['A'] }], [{ tags: ['x:1'] }]]) // [{ types: ['A'] }, { tags: ['x:1'] }]
 */
export function unionQueries(queries: readonly Query[]): Query {
  const items: QueryItem[] = []
  for (const query of queries) {
    if (query === 'all') return 'all'
    items.push(...query)
  }
  return items
}

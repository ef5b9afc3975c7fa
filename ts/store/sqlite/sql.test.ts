import { expect, test } from 'bun:test'
import { finishPageBody, PAGE_TAIL_ROOM } from './sql.ts'

const built = (events: string) => new TextEncoder().encode(`{"events":[${events}${' '.repeat(PAGE_TAIL_ROOM)}`)
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes)

test('finishPageBody writes the tail into the room, with the largest position as next or with none', () => {
  expect(text(finishPageBody(built('{"a":1},{"b":"é"}'), 9223372036854775807n))).toBe('{"events":[{"a":1},{"b":"é"}],"next":"9223372036854775807"}')
  expect(text(finishPageBody(built('{"a":1}'), 1n))).toBe('{"events":[{"a":1}],"next":"1"}')
  expect(text(finishPageBody(built('{"a":1}'), undefined))).toBe('{"events":[{"a":1}]}')
})

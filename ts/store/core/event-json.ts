/**
 * The JSON text of events, made from records without parsing their data: what the HTTP API sends
 * (`{ position, type, tags, data, metadata, id, recordedAt }`, positions as decimal strings) and
 * what a backend's `readJsonPage` must reproduce byte for byte when it builds the text itself
 * (SQLite does, in SQL: ts/store/sqlite/sql.ts).
 */
import type { EventPage, EventRecord } from './backend.ts'

// The events of one commit share their time: reuse the last ISO string (toISOString is a third of
// the cost of a page otherwise).
let lastTime = Number.NaN
let lastIso = ''

function isoOf(date: Date): string {
  const time = date.getTime()
  if (time !== lastTime) {
    lastTime = time
    lastIso = date.toISOString()
  }
  return lastIso
}

/**
 * One event as JSON text, from its record: tags, data and metadata are the store's own JSON text (what
 * JSON.stringify made of the appended values), so this is the text JSON.stringify would make of
 * the parsed event. Built by hand: measured faster than one `JSON.stringify` of the page.
 */
export function recordJson(record: EventRecord): string {
  return (
    `{"position":"${record.position}","type":${JSON.stringify(record.type)},"tags":${record.tagsJson}` +
    `,"data":${record.dataJson},"metadata":${record.metadataJson}` +
    `,"id":${JSON.stringify(record.id)},"recordedAt":"${isoOf(record.recordedAt)}"}`
  )
}

/**
 * A page from the records of a read of `limit + 1`: the first `limit` as JSON text, and `next`
 * when the extra record shows that more follow. Records that fit the page are written as they are.
 */
export function jsonPageOf(records: readonly EventRecord[], limit: number): EventPage {
  const count = Math.min(records.length, limit)
  let json = ''
  for (let i = 0; i < count; i++) {
    if (i > 0) json += ','
    json += recordJson(records[i]!)
  }
  return { json, next: records.length > limit ? records[limit - 1]!.position : undefined }
}

/**
 * Boundary reads shared by the loads of one aggregate that start in the same event-loop turn.
 *
 * Why: 16 callers of `execute` on distinct ids each read their boundary, and on PostgreSQL those
 * were 16 statements per round of commands: per statement, a socket write and a wake-up of a
 * backend in the client, parse/bind/execute and a snapshot in the server (measured, 16 callers:
 * about 150 us of client CPU and 170 us of server CPU per load, against 30 and 40 us for the rest
 * of a command). Shared, they are one read of the union of their queries, split by boundary tag.
 *
 * The read is one page of at most `PAGE_PER_BOUNDARY` events per boundary in it (memory stays
 * bounded whatever the boundaries hold): every matching event at or below the page's last position
 * is in it, so a load whose boundary goes on past a full page reads the rest alone, after that
 * position.
 */
import { AbortedError, ErrorCode } from '../errors.ts'
import type { EventStore, SequencedEvent } from '../store/types.ts'

/** What one load gets: its boundary's events from the shared page, and where to go on if it was full. */
export interface SharedPage {
  events: SequencedEvent[]
  /** Undefined when the page held every matching event; else the position to read on from. */
  continueAfter: bigint | undefined
}

interface Waiting {
  tag: string
  resolve(page: SharedPage): void
  reject(error: unknown): void
}

/**
 * Events one shared read returns at most, per boundary in it. With one page of 1,000 for the whole
 * read, 16 boundaries of about 65 events overflowed it and many read on alone: in the bench,
 * 16 callers with `cache: false` ran at 0.71x Emmett's CommandHandler, 2.1x with this.
 */
export const PAGE_PER_BOUNDARY = 1_000
/** Most boundaries in one shared read (a store refusing that many query items gets them one by one). */
export const MAX_SHARED = 16

/**
 * A reader of boundaries `[{ types, tags: [tag] }]` for one aggregate (one set of types): loads of
 * one store starting from the same position in the same turn share a read.
 */
export function sharedBoundaryReader(types: readonly string[]) {
  /** Per store, the loads waiting for the next turn, grouped by the position they read after. */
  const waiting = new WeakMap<object, Map<bigint, Waiting[]>>()

  async function readChunk(store: EventStore<any>, after: bigint, chunk: Waiting[]): Promise<void> {
    const tags = [...new Set(chunk.map((w) => w.tag))]
    const limit = PAGE_PER_BOUNDARY * tags.length
    let events: SequencedEvent[]
    try {
      events = []
      for await (const event of store.read(tags.map((tag) => ({ types: [...types], tags: [tag] })), { after, limit })) {
        events.push(event as SequencedEvent)
      }
    } catch (error) {
      if (tags.length > 1 && (error as { code?: unknown })?.code === ErrorCode.INVALID_QUERY) {
        // Too many items for this store's maxQueryItems (or one bad tag): each load reads alone
        // and gets its own answer.
        const byTag = new Map<string, Waiting[]>()
        for (const w of chunk) byTag.set(w.tag, [...(byTag.get(w.tag) ?? []), w])
        await Promise.all([...byTag.values()].map((same) => readChunk(store, after, same)))
        return
      }
      for (const w of chunk) w.reject(error)
      return
    }
    const continueAfter = events.length < limit ? undefined : events[events.length - 1]!.position
    const byTag = new Map<string, SequencedEvent[]>(tags.map((tag) => [tag, []]))
    for (const event of events) {
      // An event may carry several of the boundary tags (a transfer between two accounts).
      for (const tag of event.tags) byTag.get(tag)?.push(event)
    }
    for (const w of chunk) w.resolve({ events: byTag.get(w.tag)!, continueAfter })
  }

  function flush(store: EventStore<any>): void {
    const groups = waiting.get(store)
    waiting.delete(store)
    if (groups === undefined) return
    for (const [after, loads] of groups) {
      for (let i = 0; i < loads.length; i += MAX_SHARED) void readChunk(store, after, loads.slice(i, i + MAX_SHARED))
    }
  }

  /** The events of the boundary `tag` after `after`, from the read shared by this turn's loads. */
  return function read(store: EventStore<any>, tag: string, after: bigint, signal: AbortSignal | undefined): Promise<SharedPage> {
    return new Promise<SharedPage>((resolve, reject) => {
      if (signal?.aborted) return reject(new AbortedError('read was aborted', { cause: signal.reason }))
      // The shared read goes on for the others: an aborted load only stops waiting for it.
      const onAbort = () => reject(new AbortedError('read was aborted', { cause: signal!.reason }))
      signal?.addEventListener('abort', onAbort, { once: true })
      const done = () => signal?.removeEventListener('abort', onAbort)
      let groups = waiting.get(store)
      if (groups === undefined) {
        waiting.set(store, (groups = new Map()))
        setImmediate(() => flush(store))
      }
      let loads = groups.get(after)
      if (loads === undefined) groups.set(after, (loads = []))
      loads.push({
        tag,
        resolve: (page) => (done(), resolve(page)),
        reject: (error) => (done(), reject(error)),
      })
    })
  }
}

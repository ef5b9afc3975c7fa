/**
 * The one tail reader of a store instance, and `follow` on top of it (DESIGN.md 2.1).
 *
 * A follower catches up with its own reads (pages of its query, bounded by the head read first),
 * then joins the tail. The tail reads every new event once ('all' after the position it reached, in
 * pages; commits that land within TAIL_READ_GAP_MS of its last read wait for one read together) and
 * hands each member the events its query matches. So a commit costs at most one read for every live
 * follower together, instead of one per follower.
 *
 * Commits of this store instance cost no read at all: its writer hands the tail the events of each
 * batch it committed (built as `writtenEvents` builds them for inline projectors, from the texts
 * the store wrote, so they are the events a read returns). The tail hands them out when they
 * follow on from the last position it has seen; then nothing else can lie between (positions are
 * allocated under the append lock at commit). A gap (another process committed in between) is read
 * from storage as before. A wake-up from the backend's watch while this store's own batch is in
 * flight is usually that batch's notification: the tail waits for the batch's end once before it
 * reads. With 100 live readers beside 16 appending callers on PostgreSQL this removed the tail's
 * reads (~150 a second of ~60 rows, ~0.8 ms of server CPU each) and their decoding in the client.
 *
 * A member that falls more than a
 * few pages behind (its consumer is slow) is dropped from the tail and catches up by itself again,
 * so the tail never holds an unbounded backlog for anyone.
 *
 * The data and metadata of every event a follower yields are deeply frozen and shared: the tail
 * parses an event once and every member it goes to gets the same data, so no member can change
 * what another sees and a thousand members cost no thousand parses. The event object, its tags and
 * its recordedAt are each member's own (a few small allocations per member): freezing an array
 * costs JavaScriptCore far more than copying a short one (about 0.7 µs against 15 ns) and makes
 * reading it slower. Members of `shared` followers (internal consumers that only read their
 * events, such as the SSE hub) all get one event object instead. Catch-up pages are frozen the same
 * way, so a consumer meets the same events whether it is catching up or live.
 *
 * When the store closes, every follow and subscribe ends quietly (the iterator is done; no error),
 * after the events it had already received.
 */
import { abortableDelay } from '../../delay.ts'
import { StorageError } from '../../errors.ts'
import { matchesQuery } from '../match.ts'
import type { FollowBatch, Query, SequencedEvent } from '../types.ts'
import { deepFreeze } from './freeze.ts'

/** What the tail and the followers read through. */
export interface TailSource {
  readPage(query: Query, after: bigint, before: bigint | undefined, limit: number, backwards: boolean): Promise<SequencedEvent[]>
  head(): Promise<bigint>
  watch(wake: (head?: bigint) => void): () => void
  /** Whether this store's writer has a batch in flight, whose end it will report to `committed`. */
  writing(): boolean
}

/** The tail's counters, read by tests through `storeStats`. */
export interface TailStats {
  /** Followers currently served by the tail. */
  members: number
  /** Pages the tail has read since the store opened. */
  reads: number
  /** Commits of this store instance the tail took from its writer, without a read. */
  taken: number
  /** Whether the backend's watch (LISTEN, a poller) is running. */
  watching: boolean
}

/**
 * The tail starts a read at most once per this many ms: under a stream of commits, one read takes
 * every commit of the last few ms instead of one read per commit, since a read's fixed cost is far
 * above its cost per row (PostgreSQL, 15 rows: ~170 µs of server and ~400 µs of client CPU, a
 * third of that for one row). Live readers wait at most that much longer for an event; a commit
 * after a quiet spell is read at once. Measured with 100 readers beside 16 appending callers:
 * 0.07 -> 0.025 reads per append, server CPU per append +27 -> +9 µs over no readers.
 */
const TAIL_READ_GAP_MS = 5

class Member {
  readonly query: Query
  /** Woken when only `through` moved (follow reports it); subscribe is woken for events alone. */
  readonly progress: boolean
  /** Takes the one event object every such member shares, not a copy of its own (see `follow`). */
  readonly shared: boolean
  /** Every event this member's query matches at or below `through` is in `buffer` or was taken. */
  through = 0n
  readonly buffer: SequencedEvent[] = []
  /** Dropped by the tail (too far behind, or the store closed): consume the buffer, then catch up alone. */
  detached = false
  /** The last event the tail looked at for this member: an event reached by two tags is matched once. */
  seen: SequencedEvent | undefined
  #wake: (() => void) | undefined

  constructor(query: Query, progress: boolean, shared: boolean) {
    this.query = query
    this.progress = progress
    this.shared = shared
  }

  /** Resolves on the next `notify` (a batch, a close, an abort). */
  changed(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#wake = resolve
    })
  }

  notify(): void {
    const wake = this.#wake
    this.#wake = undefined
    wake?.()
  }
}

export class TailReader {
  readonly #source: TailSource
  readonly #pageSize: number
  readonly #pollMs: number
  readonly #members = new Set<Member>()
  /**
   * The members by one tag of each item of their query, and the members with an item without tags
   * (or 'all'): an event is matched against the members its tags reach, not against all of them.
   * Rebuilt when members come or go (`undefined` until then).
   */
  #byTag: Map<string, Member[]> | undefined
  #untagged: Member[] = []
  /** Every event at or below this was read by the tail (meaningful while it has members). */
  #through = 0n
  /** A wake-up without a known head came: read once more. */
  #dirty = false
  /** The highest head a wake-up announced: read until `#through` reaches it. */
  #wanted = 0n
  #closed = false
  #running: Promise<void> | undefined
  #idle: (() => void) | undefined
  #stopWatch: (() => void) | undefined
  #reads = 0
  #taken = 0
  /** performance.now() when the tail's last read (or take of its writer's events) started. */
  #lastRead = -Infinity
  /**
   * Events this store's own writer committed, in position order without a gap, not handed out
   * yet: when they start right after `#through`, the tail hands them out instead of reading them.
   */
  #committed: SequencedEvent[] = []
  /**
   * A read announced by a watch was put off once because this store's writer had a batch in
   * flight (the announcement may be that very batch, which `committed` then brings): at the next
   * turn the tail reads whatever is still missing.
   */
  #putOff = false
  /** Aborted by `close`: ends the wait of every follower retrying a failed catch-up read. */
  readonly #closing = new AbortController()

  constructor(source: TailSource, pageSize: number, pollMs: number) {
    this.#source = source
    this.#pageSize = pageSize
    this.#pollMs = pollMs
  }

  get stats(): TailStats {
    return { members: this.#members.size, reads: this.#reads, taken: this.#taken, watching: this.#stopWatch !== undefined }
  }

  /**
   * A batch of this store's writer ended: it committed the events `events()` builds, up to `head`
   * (undefined when it committed none). The tail keeps them to hand out without reading them,
   * when nobody else's commit came between (positions tell: the log is complete up to `head`
   * once they follow on from what the tail has seen). Otherwise it reads as for any wake-up.
   */
  committed(head: bigint | undefined, events: () => SequencedEvent[]): void {
    if (this.#members.size === 0) return
    let taken: SequencedEvent[] = []
    try {
      if (head !== undefined && head > this.#through) taken = events()
    } catch {
      // Events that cannot be rebuilt (never seen: the texts were made by JSON.stringify) are
      // read from storage like anybody else's; the writer's loop must not see the error.
      this.#committed = []
      if (head! > this.#wanted) this.#wanted = head!
    }
    if (taken.length > 0) {
      let kept = this.#committed
      // Not contiguous with what is kept (another writer came between, or results arrived out of
      // commit order): only the newest is kept, and a read brings the gap.
      if (kept.length > 0 && taken[0]!.position !== kept[kept.length - 1]!.position + 1n) kept = []
      if (kept.length === 0) kept = taken
      else for (const event of taken) kept.push(event)
      // More than a page piled up while a read was in flight: the reads bring it.
      this.#committed = kept.length > this.#pageSize ? [] : kept
      if (head! > this.#wanted) this.#wanted = head!
    }
    this.#resume()
  }

  /** A commit (or a watch) says the head moved, to `head` when known. */
  wake(head?: bigint): void {
    if (this.#members.size === 0) return
    if (head === undefined) this.#dirty = true
    else if (head > this.#through) {
      // A read already in flight may cover it: the loop checks after that read, not before.
      if (head > this.#wanted) this.#wanted = head
    } else return
    this.#resume()
  }

  /** End every member's wait; the tail stops for good. */
  close(): void {
    this.#closed = true
    for (const member of this.#members) {
      member.detached = true
      member.notify()
    }
    this.#members.clear()
    this.#closing.abort()
    this.#byTag = undefined
    this.#committed = []
    this.#stopWatching()
    this.#resume()
  }

  /**
   * Follow `query` after `after`: catch up alone, then from the tail. See `EventStore.follow`.
   * The caller validated the arguments. Without `progress` (subscribe, which yields events only),
   * a caught-up follower is not woken when the tail moves past events it does not match. With
   * `shared` (a consumer that only reads its events, such as the SSE hub), every shared follower
   * gets the same event object from the tail instead of its own copy.
   */
  async *follow(
    query: Query,
    after: bigint,
    batchSize: number,
    signal: AbortSignal | undefined,
    progress = true,
    shared = false,
  ): AsyncGenerator<FollowBatch, void, undefined> {
    let through = after
    let member: Member | undefined
    let caughtUpOnce = false
    const onAbort = () => {
      if (member !== undefined) {
        this.#leave(member)
        member.notify()
      }
    }
    if (signal?.aborted) return
    signal?.addEventListener('abort', onAbort, { once: true })
    const stopped = () => this.#closed || signal?.aborted === true
    try {
      while (!stopped()) {
        if (member === undefined || (member.detached && member.buffer.length === 0)) {
          if (member !== undefined) through = member.through > through ? member.through : through
          member = undefined
          // Catching up: a page of this query at or below the head read just before it.
          let head: bigint
          let page: SequencedEvent[] = []
          try {
            head = await this.#source.head()
            if (!stopped() && head > through) page = await this.#source.readPage(query, through, head + 1n, batchSize, false)
          } catch (error) {
            if (this.#closed) return
            // Once live, a follower outlasts a lost connection as the tail does: a follower sent
            // back to catch up alone (dropped for a slow consumer, or overtaken by the tail) tries
            // again after the poll interval until its signal or the store's close ends it. Before
            // its first caught-up batch it fails at once, so a caller learns the store is unreachable.
            if (!caughtUpOnce || !(error instanceof StorageError)) throw error
            const retryMs = Math.min(this.#pollMs, 1000)
            await abortableDelay(retryMs, signal === undefined ? this.#closing.signal : AbortSignal.any([signal, this.#closing.signal]))
            continue
          }
          if (stopped()) return
          if (head <= through) {
            member = this.#join(query, through, progress, shared)
            if (member !== undefined && !caughtUpOnce) {
              caughtUpOnce = true
              yield { events: [], through, caughtUp: true }
            }
            continue
          }
          for (const event of page) freezeData(event)
          if (page.length === batchSize && page[page.length - 1]!.position < head) {
            through = page[page.length - 1]!.position
            yield { events: page, through, caughtUp: false }
            continue
          }
          through = head
          member = this.#join(query, through, progress, shared)
          caughtUpOnce = true
          yield { events: page, through, caughtUp: true }
          continue
        }
        if (member.buffer.length === 0 && member.through <= through) {
          await member.changed()
          continue
        }
        const events = member.buffer.length <= batchSize ? member.buffer.splice(0) : member.buffer.splice(0, batchSize)
        const drained = member.buffer.length === 0
        const next = drained ? member.through : events[events.length - 1]!.position
        if (next > through) through = next
        yield { events, through, caughtUp: drained && !member.detached }
      }
    } finally {
      signal?.removeEventListener('abort', onAbort)
      if (member !== undefined) this.#leave(member)
    }
  }

  /** Make a member at `from` if the tail has not read past it; undefined otherwise (catch up more). */
  #join(query: Query, from: bigint, progress: boolean, shared: boolean): Member | undefined {
    if (this.#closed) return undefined
    const first = this.#members.size === 0
    if (first) {
      this.#through = from
      this.#wanted = from
      // Wake-ups are ignored while the tail has no member: a commit may have landed between this
      // follower's last read and now. (With members, the tail read it, and `from` is then behind.)
      this.#dirty = true
    } else if (from < this.#through) {
      return undefined
    }
    const member = new Member(query, progress, shared)
    member.through = from
    this.#members.add(member)
    this.#byTag = undefined
    if (this.#stopWatch === undefined) this.#stopWatch = this.#source.watch((head) => this.wake(head))
    this.#running ??= this.#run().finally(() => {
      this.#running = undefined
    })
    this.#resume()
    return member
  }

  #leave(member: Member): void {
    if (!this.#members.delete(member)) return
    this.#byTag = undefined
    if (this.#members.size === 0) {
      this.#committed = []
      this.#stopWatching()
      this.#resume()
    }
  }

  #stopWatching(): void {
    const stop = this.#stopWatch
    this.#stopWatch = undefined
    stop?.()
  }

  #resume(): void {
    const idle = this.#idle
    this.#idle = undefined
    idle?.()
  }

  async #run(): Promise<void> {
    while (!this.#closed && this.#members.size > 0) {
      const committed = this.#committedNext()
      if (committed === undefined) {
        const behind = this.#dirty || this.#wanted > this.#through
        // A wake-up (a NOTIFY, a poll) may announce the very batch this store's writer is
        // committing now, whose result can arrive just after it: wait for that batch's end once
        // (`committed` resumes the tail) instead of reading what it brings anyway.
        const putOff = behind && !this.#dirty && !this.#putOff && this.#committed.length === 0 && this.#source.writing()
        if (!behind || putOff) {
          this.#putOff = putOff
          await new Promise<void>((resolve) => {
            this.#idle = resolve
          })
          continue
        }
      }
      this.#putOff = false
      // Busy (the last read started moments ago): let more commits land, and read them all at
      // once. A commit after a quiet spell is read at once.
      const gap = this.#lastRead + TAIL_READ_GAP_MS - performance.now()
      if (gap > 0) {
        await new Promise((resolve) => setTimeout(resolve, gap))
        continue
      }
      if (committed !== undefined) {
        this.#lastRead = performance.now()
        this.#committed = []
        this.#taken++
        this.#fanOut(committed)
        continue
      }
      this.#dirty = false
      try {
        for (;;) {
          this.#lastRead = performance.now()
          const page = await this.#source.readPage('all', this.#through, undefined, this.#pageSize, false)
          this.#reads++
          if (this.#closed || this.#members.size === 0) return
          if (page.length > 0) this.#fanOut(page)
          // Nothing new although a wake-up announced more: a head read from a snapshot the tail's
          // read did not see yet. Forget the announcement; the next wake-up brings it again.
          else if (this.#wanted > this.#through) this.#wanted = this.#through
          if (page.length < this.#pageSize) break
        }
      } catch {
        // A failed read (a lost connection) is tried again after the poll interval; members wait.
        // Their own catch-up reads report errors; the tail has no caller to report to.
        if (this.#closed) return
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(this.#pollMs, 1000))
          this.#idle = () => {
            clearTimeout(timer)
            resolve()
          }
        })
        this.#dirty = true
      }
    }
  }

  /** This store's own committed events that follow on from `#through`, if any (dropping those read already). */
  #committedNext(): SequencedEvent[] | undefined {
    const kept = this.#committed
    if (kept.length === 0) return undefined
    if (kept[kept.length - 1]!.position <= this.#through) {
      this.#committed = []
      return undefined
    }
    let from = 0
    while (kept[from]!.position <= this.#through) from++
    if (kept[from]!.position !== this.#through + 1n) return undefined
    if (from > 0) this.#committed = kept.slice(from)
    return this.#committed
  }

  /** Hand each member the events of this page its query matches; drop members too far behind. */
  #fanOut(page: readonly SequencedEvent[]): void {
    const last = page[page.length - 1]!.position
    const limit = 4 * this.#pageSize
    const byTag = this.#byTag ?? this.#index()
    const untagged = this.#untagged
    for (const event of page) {
      // The first member gets the event read, every other one its own event around the same
      // frozen data (see the header); shared members all get one of them (with a thousand SSE
      // streams, a copy per stream was a fifth of the server's CPU per delivered event).
      let taken = false
      let forShared: SequencedEvent | undefined
      const offer = (member: Member) => {
        if (member.seen === event) return
        member.seen = event
        if (event.position <= member.through || !matchesQuery(member.query, event.type, event.tags)) return
        if (member.shared && forShared !== undefined) {
          member.buffer.push(forShared)
          return
        }
        if (taken) {
          if (member.shared) {
            forShared = copyEvent(event)
            member.buffer.push(forShared)
            return
          }
          member.buffer.push(copyEvent(event))
          return
        }
        freezeData(event)
        taken = true
        if (member.shared) forShared = event
        member.buffer.push(event)
      }
      for (const tag of event.tags) {
        const members = byTag.get(tag)
        if (members !== undefined) for (const member of members) offer(member)
      }
      for (const member of untagged) offer(member)
    }
    for (const member of this.#members) {
      member.seen = undefined
      if (last > member.through) member.through = last
      if (member.buffer.length > limit) {
        member.detached = true
        this.#members.delete(member)
        this.#byTag = undefined
      }
      if (member.progress || member.buffer.length > 0 || member.detached) member.notify()
    }
    if (this.#members.size === 0) {
      this.#committed = []
      this.#stopWatching()
    }
    this.#through = last
  }

  #index(): Map<string, Member[]> {
    const byTag = new Map<string, Member[]>()
    const untagged: Member[] = []
    for (const member of this.#members) {
      if (member.query === 'all' || member.query.some((item) => item.tags === undefined || item.tags.length === 0)) {
        untagged.push(member)
        continue
      }
      // Every item needs all its tags, so an event it matches carries the item's first tag.
      for (const item of member.query) {
        const tag = item.tags![0]!
        const members = byTag.get(tag)
        if (members === undefined) byTag.set(tag, [member])
        else if (members[members.length - 1] !== member) members.push(member)
      }
    }
    this.#byTag = byTag
    this.#untagged = untagged
    return byTag
  }
}

/**
 * Freeze everything inside an event's data and metadata, which every reader of the tail shares.
 * Returns the same event.
 */
export function freezeData(event: SequencedEvent): SequencedEvent {
  deepFreeze(event.data)
  deepFreeze(event.metadata)
  return event
}

/** Another member's event: its own object, tags and date around the same frozen data and metadata. */
function copyEvent(event: SequencedEvent): SequencedEvent {
  return {
    position: event.position,
    type: event.type,
    tags: event.tags.slice(),
    data: event.data,
    metadata: event.metadata,
    id: event.id,
    recordedAt: new Date(event.recordedAt.getTime()),
  }
}

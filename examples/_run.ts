/**
 * Shared start-up for the example programs: which store to open, and how to report a refusal.
 *
 * Every example runs on `memory:` unless a URL is given as the first argument or in
 * RINGSTATE_URL (e.g. `bun examples/invoice-numbers.ts sqlite:./data/demo.db`). The in-memory
 * default makes each run start from an empty log, so the printed story is always the same; on a
 * persistent store a second run sees the events of the first (which is what a store is for).
 */
import { openStore, type EventMap, type EventStore } from '../ts/index.ts'

/** The URL the example will open: argv, then RINGSTATE_URL, then 'memory:'. */
export function exampleUrl(): string {
  return process.argv[2] ?? process.env.RINGSTATE_URL ?? 'memory:'
}

/** Open the example's store, run the story, close the store; print a refusal's reason. */
export async function runExample<E extends EventMap>(
  title: string,
  story: (store: EventStore<E>) => Promise<void>,
): Promise<void> {
  const url = exampleUrl()
  // Print only the scheme: a postgres URL may hold a password.
  console.log(`${title} (store: ${url.slice(0, url.indexOf(':') + 1)})`)
  const store = await openStore<E>(url)
  try {
    await story(store)
  } finally {
    await store.close()
  }
}

/** Run a step that may be refused, and print either its result or the domain reason. */
export async function attempt(label: string, step: () => Promise<unknown>): Promise<boolean> {
  try {
    const result = await step()
    console.log(`  ok       ${label}${result === undefined ? '' : ` -> ${describe(result)}`}`)
    return true
  } catch (error) {
    console.log(`  refused  ${label}: ${reason(error)}`)
    return false
  }
}

/** The domain reason of a refused command (the cause of COMMAND_FAILED), or the error itself. */
export function reason(error: unknown): string {
  const { code, cause, message } = error as { code?: string; cause?: unknown; message?: string }
  if (code === 'COMMAND_FAILED' && cause instanceof Error) return cause.message
  return code === undefined ? String(message ?? error) : `${code}: ${message}`
}

function describe(value: unknown): string {
  return JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? Number(v) : v))
}

/**
 * `serve` on whatever runtime runs this file (the Deno test starts it with `deno run`): a memory
 * store, port 0, and the URL printed on stdout; it stops when stdin closes.
 */
import { MemoryStore } from '../../store/memory/index.ts'
import { serve } from '../index.ts'

const store = new MemoryStore()
const server = await serve(store, { port: 0, sse: { heartbeatMs: 50 } })
console.log(server.url)
// Runs until the parent closes stdin (Deno and Bun both expose it as a web stream here).
const stdin = (globalThis as { Deno?: { stdin: { readable: ReadableStream<Uint8Array> } } }).Deno?.stdin.readable
if (stdin !== undefined) {
  const reader = stdin.getReader()
  while (!(await reader.read()).done);
}
await server.stop()
await store.close()

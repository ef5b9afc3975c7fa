/**
 * `serve` on whatever runtime runs this file (the tests start it with `deno run`, and under Node
 * as a bundle made by `bun build --target=node`): a memory store, port 0, and the URL printed on
 * stdout; it stops when stdin closes.
 */
import { MemoryStore } from '../../store/memory/index.ts'
import { serve } from '../index.ts'

const store = new MemoryStore()
const server = await serve(store, { port: 0, sse: { heartbeatMs: 50 } })
console.log(server.url)
// Runs until the parent closes stdin.
const stdin = (globalThis as { Deno?: { stdin: { readable: ReadableStream<Uint8Array> } } }).Deno?.stdin.readable
if (stdin !== undefined) {
  const reader = stdin.getReader()
  while (!(await reader.read()).done);
} else {
  await new Promise<void>((resolve) => process.stdin.on('end', resolve).resume())
}
await server.stop()
await store.close()

/**
 * A separate process for the SSE tests: opens the store at `url`, appends one event of `type`
 * (data: its pid), prints the position and exits.
 *
 *   bun append-child.ts <store url> <type>
 */
import { openStore } from '../../store/index.ts'

const [url, type] = process.argv.slice(2)
if (url === undefined || type === undefined) throw new Error('usage: append-child.ts <store url> <type>')
const store = await openStore(url)
const { position } = await store.append({ type, data: { pid: process.pid } })
await store.close()
console.log(String(position))

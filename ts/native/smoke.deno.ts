// The addon smoke suite under Deno:
//   ./node_modules/.bin/deno test --allow-all ts/native/smoke.deno.ts
// The published addon through the real loader (ts/native/index.ts), and the test build (cargo
// feature test-exports) beside it for the cases shared with Bun and Node. Not named *.test.ts so
// that `bun test` leaves it alone.
import assert from 'node:assert/strict'
import { loadNative, nativeInfo } from './index.ts'
import { smokeCases } from './smoke-cases.mjs'
import { loadTestAddon } from './test-addon.ts'

const production = loadNative()
const addon = loadTestAddon()

Deno.test('the loader finds the published addon under Deno, without test-only exports', () => {
  assert.ok(production, `the addon did not load: ${nativeInfo().reason}`)
  assert.equal(nativeInfo().mode, 'native')
  assert.equal('diagnostics' in production!, false)
})

for (const [name, run] of smokeCases(addon, { production: production ?? undefined })) Deno.test(name, run)

Deno.test('a Worker loads the addon and shares the static memory of the process', async () => {
  const d = addon.diagnostics
  const before = d.sharedCounterAdd(7)
  const worker = new Worker(new URL('./worker-fixture.ts', import.meta.url).href, { type: 'module' })
  try {
    const reply = new Promise((resolve, reject) => {
      worker.onmessage = (event) => resolve(event.data)
      worker.onerror = (event) => {
        event.preventDefault()
        reject(new Error(event.message))
      }
    })
    worker.postMessage(5)
    assert.deepEqual(await reply, { version: addon.version(), total: before + 5 })
    assert.equal(d.sharedCounterAdd(0), before + 5)
  } finally {
    worker.terminate()
  }
})

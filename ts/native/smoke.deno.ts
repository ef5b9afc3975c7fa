// The addon smoke suite under Deno:
//   ./node_modules/.bin/deno test --allow-all ts/native/smoke.deno.ts
// Loads the addon through the real loader (ts/native/index.ts) and runs the cases shared with
// Bun and Node. Not named *.test.ts so that `bun test` leaves it alone.
import assert from 'node:assert/strict'
import { loadNative, nativeInfo } from './index.ts'
import { smokeCases } from './smoke-cases.mjs'

const addon = loadNative()

Deno.test('the loader finds the addon under Deno', () => {
  assert.ok(addon, `the addon did not load: ${nativeInfo().reason}`)
  assert.equal(nativeInfo().mode, 'native')
})

for (const [name, run] of addon ? smokeCases(addon) : []) Deno.test(name, run)

Deno.test('a Worker loads the addon and shares the static memory of the process', async () => {
  const d = addon!.diagnostics
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
    assert.deepEqual(await reply, { version: addon!.version(), total: before + 5 })
    assert.equal(d.sharedCounterAdd(0), before + 5)
  } finally {
    worker.terminate()
  }
})

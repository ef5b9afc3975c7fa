// The addon smoke suite under Node: `node --test ts/native/smoke.node.mjs`.
// Node 20 cannot import the TypeScript loader, so this loads the addon file the way the loader
// does (same name, RINGSTATE_NATIVE_PATH first) and then runs the cases shared with Bun and Deno.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { smokeCases } from './smoke-cases.mjs'

function addonFileName() {
  const { platform, arch } = process
  if (platform !== 'linux') return `ringstate.${platform}-${arch}.node`
  const glibc = process.report?.getReport?.()?.header?.glibcVersionRuntime
  return `ringstate.${platform}-${arch}-${glibc ? 'gnu' : 'musl'}.node`
}

const candidates = [process.env.RINGSTATE_NATIVE_PATH, fileURLToPath(new URL(`../../${addonFileName()}`, import.meta.url))]
  .filter(Boolean)
const path = candidates.find((p) => existsSync(p))
const addon = path ? createRequire(import.meta.url)(path) : undefined

test('the addon loads under Node', () => {
  assert.ok(addon, `no addon at ${candidates.join(' or ')}; run npm run build:native`)
})

for (const [name, run] of addon ? smokeCases(addon) : []) test(name, run)

test('a worker_threads Worker loads the addon and shares the static memory of the process', async () => {
  const { Worker } = await import('node:worker_threads')
  const d = addon.diagnostics
  const before = d.sharedCounterAdd(7)
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads')
    const addon = require(workerData.path)
    parentPort.postMessage({ version: addon.version(), total: addon.diagnostics.sharedCounterAdd(5) })
  `, { eval: true, workerData: { path } })
  try {
    const reply = await new Promise((resolve, reject) => {
      worker.once('message', resolve)
      worker.once('error', reject)
    })
    assert.deepEqual(reply, { version: addon.version(), total: before + 5 })
    assert.equal(d.sharedCounterAdd(0), before + 5)
  } finally {
    await worker.terminate()
  }
})

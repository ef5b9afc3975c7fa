// The addon smoke suite under Node: `node --test ts/native/smoke.node.mjs`.
// Node 20 cannot import the TypeScript loader, so this loads the two builds by file name, as the
// loader names them: the test build (ringstate.<triple>.test.node, cargo feature test-exports) for
// the cases shared with Bun and Deno, and the published build (ringstate.<triple>.node, or
// RINGSTATE_NATIVE_PATH) beside it.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import { smokeCases } from './smoke-cases.mjs'

function platformTriple() {
  const { platform, arch } = process
  if (platform !== 'linux') return `${platform}-${arch}`
  const glibc = process.report?.getReport?.()?.header?.glibcVersionRuntime
  return `${platform}-${arch}-${glibc ? 'gnu' : 'musl'}`
}

const requireAddon = createRequire(import.meta.url)
const testPath = fileURLToPath(new URL(`../../ringstate.${platformTriple()}.test.node`, import.meta.url))
const productionPath = process.env.RINGSTATE_NATIVE_PATH || fileURLToPath(new URL(`../../ringstate.${platformTriple()}.node`, import.meta.url))
const addon = existsSync(testPath) ? requireAddon(testPath) : undefined
const production = existsSync(productionPath) ? requireAddon(productionPath) : undefined

test('both builds of the addon load under Node, and only the test build has test-only exports', () => {
  assert.ok(addon, `no test build at ${testPath}; run node scripts/build-native.mjs --test-exports`)
  assert.ok(production, `no addon at ${productionPath}; run npm run build:native`)
  assert.equal(typeof addon.diagnostics, 'object')
  assert.equal('diagnostics' in production, false)
})

// Node refuses a foreign `this` for class methods itself (V8 signature check, "Illegal
// invocation") before native code runs; getters and functions reach our own check.
for (const [name, run] of addon ? smokeCases(addon, { production, runtimeChecksMethods: true }) : []) test(name, run)

test('a worker_threads Worker loads the addon and shares the static memory of the process', async () => {
  const { Worker } = await import('node:worker_threads')
  const d = addon.diagnostics
  const before = d.sharedCounterAdd(7)
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads')
    const addon = require(workerData.path)
    parentPort.postMessage({ version: addon.version(), total: addon.diagnostics.sharedCounterAdd(5) })
  `, { eval: true, workerData: { path: testPath } })
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

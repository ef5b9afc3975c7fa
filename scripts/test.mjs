#!/usr/bin/env node
// `npm test`: every test, in every runtime and native mode, in one command.
//   1. cargo test          the pure Rust cores (ring, hamt) and the Node-API layer, in debug (debug
//                          assertions, overflow checks) and release; cargo clippy -D warnings, with
//                          and without the test-only exports; then the addon's test build
//                          (scripts/build-native.mjs --test-exports), which the smoke suites load
//   2. bun test            RINGSTATE_NATIVE=1 (the addon is demanded) and RINGSTATE_NATIVE=0 (pure-TS twins)
//   3. node --test         the addon's smoke suite under Node
//   4. deno test           the addon's smoke suite under Deno
//   5. deno test           the Deno suite (ts/testing/runtimes.deno.ts): the main paths of every part
//                          under Deno (store on memory, SQLite via node:sqlite and PostgreSQL; bus
//                          with a SharedRing across Workers; cache; projections; runtime; serve)
//   6. node --test         the Node suite (ts/testing/runtimes.node.mjs) over dist/, built first
//                          (scripts/build-dist.mjs); on a Node without node:sqlite the SQLite cases
//                          check the clear INVALID_OPTIONS instead
//   7. node --test         the packing test (scripts/pack-test.mjs): npm pack, install the tarballs
//                          into a fresh project without Rust, smoke it under Bun, Node and Deno
// Before them, `tsc --noEmit` over ts/, examples/ and bench/, and every ```ts block of README.md
// (scripts/check-readme.mjs).
// PostgreSQL: DATABASE_URL when set; otherwise one throwaway cluster (initdb + pg_ctl in a temp dir)
// serves both bun runs and is removed afterwards. Each test file creates its own database on it.
// The last line totals every runner: "tests: N passed, N failed".
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const bin = (name) => join(root, 'node_modules', '.bin', name)

/** Runs a command, echoing its output, and returns { code, output }. */
function run(label, command, args, env = {}) {
  console.log(`\n=== ${label}: ${command.replace(root + '/', '')} ${args.join(' ')}`)
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    const tee = (stream, sink) => stream.on('data', (chunk) => { output += chunk; sink.write(chunk) })
    tee(child.stdout, process.stdout)
    tee(child.stderr, process.stderr)
    child.on('error', (error) => resolve({ code: 127, output: output + String(error) }))
    child.on('close', (code) => resolve({ code: code ?? 1, output }))
  })
}

// Each runner prints its totals differently; a runner that exits non-zero without a parsable
// failure count still counts as one failure so the total can never read green by accident.
const counters = {
  cargo: (out) => sumAll(out, /test result: \w+\. (\d+) passed; (\d+) failed/g),
  bun: (out) => [lastNumber(out, /^\s*(\d+) pass$/gm), lastNumber(out, /^\s*(\d+) fail$/gm)],
  node: (out) => [lastNumber(out, /^# pass (\d+)$/gm), lastNumber(out, /^# fail (\d+)$/gm)],
  deno: (out) => sumAll(out, /ok \| (\d+) passed \| (\d+) failed|FAILED \| (\d+) passed \| (\d+) failed/g),
  // Our own scripts print one "name: N passed, N failed" line.
  plain: (out) => sumAll(out, /^\w+: (\d+) passed, (\d+) failed$/gm),
  // tsc prints nothing when clean: one check passed; otherwise every error counts as a failure.
  tsc: (out) => {
    const errors = (out.match(/error TS\d+/g) ?? []).length
    return [errors === 0 ? 1 : 0, errors]
  },
  // A check with no test count of its own (clippy, a build): one pass, or one failure (step()).
  exit: () => [1, 0],
}
function sumAll(out, pattern) {
  let passed = 0, failed = 0
  for (const m of out.matchAll(pattern)) {
    const nums = m.slice(1).filter((x) => x !== undefined).map(Number)
    passed += nums[0]; failed += nums[1]
  }
  return [passed, failed]
}
function lastNumber(out, pattern) {
  const all = [...out.matchAll(pattern)]
  return all.length ? Number(all[all.length - 1][1]) : 0
}

// The names of failed tests, repeated in the summary: CI keeps only the end of a long log, and a
// flaky test must be identifiable from it. Bun prints "(fail) name", node --test "not ok N - name".
function failureNames(out) {
  const names = [...out.matchAll(/^\(fail\) (.+)$/gm), ...out.matchAll(/^\s*not ok \d+ - (.+)$/gm)].map((m) => m[1].trim())
  return [...new Set(names)]
}

const steps = []
async function step(label, kind, command, args, env) {
  const { code, output } = await run(label, command, args, env)
  // Colour codes would split the numbers from their words; strip them before counting.
  const plain = output.replace(/\x1b\[[0-9;]*m/g, '')
  let [passed, failed] = counters[kind](plain)
  if (code !== 0 && failed === 0) failed = 1
  if (kind === 'exit' && code !== 0) passed = 0
  steps.push({ label, code, passed, failed, failures: failureNames(plain) })
}

let cluster
if (!process.env.DATABASE_URL) {
  const { startCluster } = await import(pathToFileURL(join(root, 'ts', 'testing', 'pg-cluster.mjs')).href)
  try {
    cluster = await startCluster()
    process.env.DATABASE_URL = cluster.url
    console.log(`[test] throwaway PostgreSQL cluster at ${cluster.url}`)
  } catch (error) {
    // The PostgreSQL tests then fail on their own with this reason; nothing is skipped.
    console.error(`[test] could not start a throwaway PostgreSQL cluster: ${error.message}`)
  }
}

try {
  // The whole tree (ts/, examples/, bench/) under the strict tsconfig: typed events are only a
  // guarantee while this passes. bench/'s peers are installed by `setup.mjs --bench` for it.
  await step('tsc --noEmit', 'tsc', bin('tsc'), ['--noEmit', '-p', '.'])
  await step('README examples type-check', 'plain', process.execPath, ['scripts/check-readme.mjs'])
  await step('cargo test (debug)', 'cargo', 'cargo', ['test', '--workspace'])
  // Doctests are compiled code examples: once, in the debug run, is enough.
  await step('cargo test (release)', 'cargo', 'cargo', ['test', '--workspace', '--release', '--lib', '--tests'])
  await step('cargo clippy', 'exit', 'cargo', ['clippy', '--workspace', '--all-targets', '--', '-D', 'warnings'])
  await step('cargo clippy (test exports)', 'exit', 'cargo', ['clippy', '--workspace', '--all-targets', '--features', 'ringstate-node/test-exports', '--', '-D', 'warnings'])
  await step('addon test build', 'exit', process.execPath, ['scripts/build-native.mjs', '--test-exports'])
  await step('bun test (native addon)', 'bun', bin('bun'), ['test', '--timeout', '120000'], { RINGSTATE_NATIVE: '1' })
  await step('bun test (pure TypeScript)', 'bun', bin('bun'), ['test', '--timeout', '120000'], { RINGSTATE_NATIVE: '0' })
  await step('node smoke', 'node', process.execPath, ['--test', 'ts/native/smoke.node.mjs'])
  await step('deno smoke', 'deno', bin('deno'), ['test', '--allow-all', '--no-check', 'ts/native/smoke.deno.ts'], { DENO_NO_UPDATE_CHECK: '1' })
  await step('deno suite', 'deno', bin('deno'), ['test', '--allow-all', '--no-check', 'ts/testing/runtimes.deno.ts'], { DENO_NO_UPDATE_CHECK: '1' })
  await step('dist build', 'exit', process.execPath, ['scripts/build-dist.mjs'])
  await step('node suite', 'node', process.execPath, ['--test', 'ts/testing/runtimes.node.mjs'])
  await step('packing', 'node', process.execPath, ['--test', 'scripts/pack-test.mjs'])
} finally {
  await cluster?.stop()
}

console.log('\n=== summary')
let passed = 0, failed = 0
for (const s of steps) {
  passed += s.passed; failed += s.failed
  console.log(`${s.code === 0 ? 'ok  ' : 'FAIL'} ${s.label}: ${s.passed} passed, ${s.failed} failed`)
  for (const name of s.failures.slice(0, 20)) console.log(`       failed: ${name}`)
}
console.log(`tests: ${passed} passed, ${failed} failed`)
process.exit(failed === 0 && steps.every((s) => s.code === 0) ? 0 : 1)

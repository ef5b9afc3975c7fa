#!/usr/bin/env node
// The packing test (`node --test scripts/pack-test.mjs`, run by npm test): what a user gets from
// `npm install ringstate` on linux-x64-gnu, checked the way a user would meet it.
//
//   1. builds dist/ (tsconfig.build.json), `npm pack`s the main package and the platform package
//      (npm/<triple>, holding the addon that scripts/build-native.mjs built);
//   2. installs both tarballs into a fresh temporary project, from npm's cache (--offline), with
//      no Rust toolchain on PATH;
//   3. runs one smoke script under Bun, Node and Deno that imports ringstate, ringstate/bus,
//      ringstate/cache and ringstate/native, opens a memory: store, appends and reads, and reports
//      where the addon came from (it must be the installed platform package) and which files the
//      runtime resolved (Bun: the TypeScript sources; Node and Deno: dist/);
//   4. runs the installed `ringstate` command.
// Needs: the addon built (npm test's set-up does it), npm's cache holding the dependencies
// (any earlier npm install of this repository).
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const triple = (() => {
  const { platform, arch } = process
  if (platform !== 'linux') return `${platform}-${arch}`
  return `${platform}-${arch}-${process.report.getReport().header.glibcVersionRuntime ? 'gnu' : 'musl'}`
})()
const platformDir = join(root, 'npm', triple)
const platformName = `@ringstate/${triple}`
const bin = (name) => join(root, 'node_modules', '.bin', name)

/** PATH without any directory that holds cargo or rustc: the user has no Rust toolchain. */
const pathWithoutRust = (process.env.PATH ?? '')
  .split(delimiter)
  .filter((dir) => dir && !['cargo', 'rustc'].some((tool) => existsSync(join(dir, tool))))
  .join(delimiter)
const userEnv = { ...process.env, PATH: pathWithoutRust, RINGSTATE_NATIVE: '1', DENO_NO_UPDATE_CHECK: '1' }
for (const key of ['RINGSTATE_NATIVE_PATH', 'RINGSTATE_RUNTIME', 'npm_config_prefix']) delete userEnv[key]

/** Runs a command; returns { status, stdout, stderr }, failing the test with its output if asked. */
function run(command, args, options = {}) {
  const { cwd = root, env = process.env, expectSuccess = true } = options
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
  if (result.error) throw result.error
  if (expectSuccess && result.status !== 0) {
    assert.fail(`${command} ${args.join(' ')} exited ${result.status ?? result.signal}\n${result.stdout}\n${result.stderr}`)
  }
  return result
}

/** The smoke script, run in the installed project under each runtime; prints one JSON line. */
const SMOKE = `
import { openStore } from 'ringstate'
import { EventBus } from 'ringstate/bus'
import { StateCache } from 'ringstate/cache'
import { loadNative, nativeInfo } from 'ringstate/native'

const store = await openStore('memory:')
await store.append({ type: 'Packed', tags: ['smoke:1'], data: { n: 1 } })
const read = []
for await (const event of store.read('all')) read.push({ type: event.type, position: String(event.position), data: event.data })
await store.close()
const bus = new EventBus({ capacity: 8, overrun: 'error' })
let handled = 0
bus.on('ping', () => { handled++ })
bus.publish({ type: 'ping' })
bus.drain()
const native = loadNative()
const map = native.hamtFromBytes(new Uint8Array(new native.HamtMap().withChanges(Uint8Array.of(1, 1, 107, 1, 118)).toBytes()))
console.log(JSON.stringify({
  read,
  handled,
  cache: typeof StateCache,
  hamt: Array.from(map.get('k')),
  diagnostics: 'diagnostics' in native,
  info: nativeInfo(),
  resolved: import.meta.resolve('ringstate'),
}))
`

let scratch
let project
let build
let mainFiles
let platformFiles

before(() => {
  assert.ok(existsSync(join(platformDir, `ringstate.${triple}.node`)), `the addon is not in ${platformDir}: run npm run build:native`)
  scratch = mkdtempSync(join(tmpdir(), 'ringstate-pack-'))
  // Built here rather than by prepack (npm pack --ignore-scripts below) so that a type error is
  // reported as its own failure while the rest of the packaging is still checked.
  build = run(process.execPath, [join(root, 'scripts', 'build-dist.mjs')], { expectSuccess: false })
  const pack = (dir) => {
    const out = run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', scratch], { cwd: dir })
    const [info] = JSON.parse(out.stdout)
    return { tarball: join(scratch, info.filename), files: info.files.map((f) => f.path) }
  }
  const main = pack(root)
  const platform = pack(platformDir)
  mainFiles = main.files
  platformFiles = platform.files
  project = join(scratch, 'app')
  run('mkdir', ['-p', project])
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
  // Both tarballs at once: the platform package satisfies ringstate's optional dependency, so
  // npm never asks the registry for it. The other dependencies come from npm's cache: --offline
  // when the cache also holds their registry metadata, else --prefer-offline, which fetches only
  // the metadata it lacks (npm does not always keep it) and still takes the tarballs from the cache.
  // @types/node as a Node TypeScript consumer has it: postgres.js's own types (which ctx.tx of
  // ringstate/projections exposes) need it. The version is the one this repository installed.
  const typesNode = `@types/node@${JSON.parse(readFileSync(join(root, 'node_modules', '@types', 'node', 'package.json'), 'utf8')).version}`
  const install = (mode) => run('npm', ['install', mode, '--no-audit', '--no-fund', '--ignore-scripts', main.tarball, platform.tarball, typesNode],
    { cwd: project, env: userEnv, expectSuccess: mode !== '--offline' })
  if (install('--offline').status !== 0) {
    console.log('# npm install --offline lacked cached registry metadata; installed with --prefer-offline')
    install('--prefer-offline')
  }
  writeFileSync(join(project, 'smoke.mjs'), SMOKE)
})

after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true })
})


test('dist/ builds (scripts/build-dist.mjs, tsconfig.build.json) without type errors', () => {
  assert.equal(build.status, 0, `scripts/build-dist.mjs:\n${build.stdout}${build.stderr}`)
})

test('the main package holds the sources, dist/, the launcher and LICENSE, and no tests, fixtures, measurement scripts or addon', () => {
  for (const file of ['LICENSE', 'README.md', 'package.json', 'bin/ringstate.mjs', 'dist/index.js', 'dist/index.d.ts',
    'dist/native/index.js', 'dist/cli.js', 'ts/index.ts', 'ts/native/index.ts']) {
    assert.ok(mainFiles.includes(file), `${file} is missing from the main package`)
  }
  const unwanted = mainFiles.filter((file) =>
    /\.test\.ts$|\.case\.ts$|\.fixture\.|\/testdata\/|\/testing\/|measure-|smoke|test-addon|worker-fixture|conformance|dcb-scenarios|\.node$/.test(file) ||
    /^(bench|crates|scripts|examples|npm|target|data)\//.test(file))
  assert.deepEqual(unwanted, [])
  assert.equal(manifest.license, 'MIT')
  assert.match(readFileSync(join(root, 'LICENSE'), 'utf8'), /MIT License[\s\S]*2026 ringstate contributors/)
  assert.deepEqual(manifest.optionalDependencies, { [platformName]: manifest.version })
})

test('the platform package is the addon alone, for this os, cpu and libc only', () => {
  const platformManifest = JSON.parse(readFileSync(join(platformDir, 'package.json'), 'utf8'))
  assert.equal(platformManifest.name, platformName)
  assert.equal(platformManifest.version, manifest.version)
  assert.deepEqual([platformManifest.os, platformManifest.cpu], [[process.platform], [process.arch]])
  if (process.platform === 'linux') assert.deepEqual(platformManifest.libc, [triple.endsWith('gnu') ? 'glibc' : 'musl'])
  assert.deepEqual(platformFiles.sort(), ['README.md', 'package.json', `ringstate.${triple}.node`].sort())
})

test('the install needs no Rust toolchain: cargo is not on the PATH it ran with', () => {
  const cargo = spawnSync('cargo', ['--version'], { env: userEnv })
  assert.equal(cargo.error?.code, 'ENOENT')
  assert.ok(existsSync(join(project, 'node_modules', ...platformName.split('/'), `ringstate.${triple}.node`)))
})

const runtimes = [
  ['Bun', bin('bun'), ['smoke.mjs'], 'ts/index.ts'],
  ['Node', process.execPath, ['smoke.mjs'], 'dist/index.js'],
  ['Deno', bin('deno'), ['run', '--allow-all', 'smoke.mjs'], 'dist/index.js'],
]
for (const [name, executable, args, entry] of runtimes) {
  test(`under ${name}, the installed package imports, stores and reads, and loads the addon from the platform package`, () => {
    const { stdout } = run(executable, args, { cwd: project, env: userEnv })
    const report = JSON.parse(stdout.trim().split('\n').at(-1))
    const installed = join(project, 'node_modules')
    assert.deepEqual(report.read, [{ type: 'Packed', position: '1', data: { n: 1 } }])
    assert.equal(report.handled, 1)
    assert.equal(report.cache, 'function')
    assert.deepEqual(report.hamt, [118])
    assert.equal(report.diagnostics, false)
    assert.deepEqual(report.info, {
      mode: 'native',
      source: 'package',
      version: manifest.version,
      path: join(installed, ...platformName.split('/'), `ringstate.${triple}.node`),
      reason: `loaded the platform package ${platformName}`,
    })
    assert.equal(fileURLToPath(report.resolved), join(installed, 'ringstate', entry))
  })
}

test('a TypeScript consumer type-checks against the installed .d.ts files (the types condition), with no casts', () => {
  writeFileSync(join(project, 'consumer.ts'), `
import { openStore, type EventStore } from 'ringstate'
import { EventBus } from 'ringstate/bus'
import { StateCache } from 'ringstate/cache'
import { nativeInfo, type NativeInfo } from 'ringstate/native'
import { defineAggregate, startProjections } from 'ringstate/projections'
import { run, inbox } from 'ringstate/runtime'
import { createApp } from 'ringstate/http'
export const parts = [defineAggregate, startProjections, run, inbox, createApp].map((part) => typeof part)
export async function use(): Promise<string> {
  const store: EventStore = await openStore('memory:')
  await store.append({ type: 'Typed', tags: ['t:1'] })
  const bus = new EventBus<{ type: 'ping' }>({ capacity: 8, overrun: 'error' })
  bus.publish({ type: 'ping' })
  const info: NativeInfo = nativeInfo()
  await store.close()
  return info.mode + typeof StateCache
}
`)
  writeFileSync(join(project, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', strict: true, noEmit: true, types: ['node'], lib: ['es2023', 'dom'] },
    files: ['consumer.ts'],
  }))
  const tsc = run(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', project], { cwd: project, expectSuccess: false })
  assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr)
})

test('the installed ringstate command answers --version without Bun on PATH', () => {
  const env = { ...userEnv, PATH: [join(project, 'node_modules', '.bin'), dirname(process.execPath)].join(delimiter) }
  const { stdout } = run(join(project, 'node_modules', '.bin', 'ringstate'), ['--version'], { cwd: project, env })
  assert.equal(stdout.trim(), manifest.version)
})

test('the installed ringstate command runs the command line on Node from dist/ when Bun is not on PATH', () => {
  const env = { ...userEnv, PATH: [join(project, 'node_modules', '.bin'), dirname(process.execPath)].join(delimiter) }
  run(join(project, 'node_modules', '.bin', 'ringstate'), ['read', '--url', 'memory:'], { cwd: project, env })
  const unknown = run(join(project, 'node_modules', '.bin', 'ringstate'), ['no-such-command', '--url', 'memory:'], { cwd: project, env, expectSuccess: false })
  assert.equal(unknown.status, 2, unknown.stderr)
})

test('the installed ringstate command re-executes under Bun when Bun is on PATH, so the SQLite store (bun:sqlite) works', () => {
  const withBun = { ...userEnv, PATH: [dirname(bin('bun')), join(project, 'node_modules', '.bin'), dirname(process.execPath)].join(delimiter) }
  const withoutBun = { ...userEnv, PATH: [join(project, 'node_modules', '.bin'), dirname(process.execPath)].join(delimiter) }
  const ringstate = join(project, 'node_modules', '.bin', 'ringstate')
  run(ringstate, ['read', '--url', 'sqlite:./bun.db'], { cwd: project, env: withBun })
  assert.ok(existsSync(join(project, 'bun.db')), 'the SQLite file was not created')
  // The same command on a Node without node:sqlite (before 22.13/23.4) fails with INVALID_OPTIONS:
  // that is what the re-execution is for. A Node with it runs the store itself.
  const [major, minor] = process.versions.node.split('.').map(Number)
  const nodeSqlite = major > 23 || (major === 23 && minor >= 4) || (major === 22 && minor >= 13)
  const onNode = run(ringstate, ['read', '--url', 'sqlite:./node.db'], { cwd: project, env: withoutBun, expectSuccess: nodeSqlite })
  if (nodeSqlite) assert.ok(existsSync(join(project, 'node.db')), 'the SQLite file was not created on Node')
  else assert.match(onNode.stderr, /INVALID_OPTIONS|node:sqlite/)
})

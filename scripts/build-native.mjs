#!/usr/bin/env node
// Builds the native addon and puts it where the loader (ts/native/index.ts) looks for it.
//
//   node scripts/build-native.mjs                 the addon that ships
//     cargo build --release -p ringstate-node
//     -> <repo root>/ringstate.<triple>.node              (the loader's "locally built file")
//     -> <repo root>/npm/<triple>/ringstate.<triple>.node (the platform package, when npm/<triple> exists)
//   node scripts/build-native.mjs --test-exports  the test build, with the test-only `diagnostics`
//     cargo build --release -p ringstate-node --features test-exports, in <target>/test-exports
//     -> <repo root>/ringstate.<triple>.test.node  (loaded by the addon's smoke tests only)
//
// <triple> is <platform>-<arch>[-<libc>] (libc gnu | musl, Linux only), the napi-rs naming.
// The test build has its own target directory so that switching between the two feature sets
// never rebuilds either: each stays an incremental no-op when nothing changed.
// CARGO_TARGET_DIR is respected (default ./target). Exits non-zero, with the reason, on failure.
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, renameSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const testExports = process.argv.includes('--test-exports')

/** The same triple ts/native/index.ts computes; keep the two in step. */
function platformTriple() {
  const { platform, arch } = process
  if (platform !== 'linux') return `${platform}-${arch}`
  // glibc reports its runtime version; musl does not.
  const glibc = process.report?.getReport?.()?.header?.glibcVersionRuntime
  return `${platform}-${arch}-${glibc ? 'gnu' : 'musl'}`
}

/** What cargo names a cdylib called ringstate_node on this platform. */
function libraryFileName() {
  if (process.platform === 'darwin') return 'libringstate_node.dylib'
  if (process.platform === 'win32') return 'ringstate_node.dll'
  return 'libringstate_node.so'
}

function fail(message) {
  console.error(`[build-native] ${message}`)
  process.exit(1)
}

/** Copies to a temporary name, then renames: overwriting a file in place would corrupt the
 * mapping of any process that has the previous build loaded. */
function install(built, destination) {
  const temporary = `${destination}.${process.pid}.tmp`
  try {
    copyFileSync(built, temporary)
    renameSync(temporary, destination)
  } catch (error) {
    rmSync(temporary, { force: true })
    fail(`could not copy ${built} to ${destination}: ${error.message}`)
  }
  console.error(`[build-native] ${destination}`)
}

const cargo = process.env.CARGO ?? 'cargo'
const baseTarget = resolve(root, process.env.CARGO_TARGET_DIR ?? 'target')
const targetDir = testExports ? join(baseTarget, 'test-exports') : baseTarget
const args = ['build', '--release', '-p', 'ringstate-node', ...(testExports ? ['--features', 'test-exports'] : [])]
const build = spawnSync(cargo, args, { cwd: root, stdio: 'inherit', env: { ...process.env, CARGO_TARGET_DIR: targetDir } })
if (build.error) {
  if (build.error.code === 'ENOENT') {
    fail(`'${cargo}' was not found on PATH: install a Rust toolchain (https://rustup.rs) to build the addon`)
  }
  fail(`could not run ${cargo}: ${build.error.message}`)
}
if (build.status !== 0) fail(`cargo build failed (exit ${build.status ?? build.signal})`)

const built = join(targetDir, 'release', libraryFileName())
if (!existsSync(built)) fail(`cargo succeeded but ${built} does not exist`)

const triple = platformTriple()
if (testExports) {
  install(built, join(root, `ringstate.${triple}.test.node`))
} else {
  install(built, join(root, `ringstate.${triple}.node`))
  const platformPackage = join(root, 'npm', triple)
  if (existsSync(join(platformPackage, 'package.json'))) install(built, join(platformPackage, `ringstate.${triple}.node`))
}

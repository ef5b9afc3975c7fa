#!/usr/bin/env node
// Builds the native addon and puts it where the loader (ts/native/index.ts) looks for it:
//   cargo build --release -p ringstate-node
//   -> <repo root>/ringstate.<platform>-<arch>[-<libc>].node   (libc: gnu | musl, Linux only)
// CARGO_TARGET_DIR is respected (default ./target). Exits non-zero, with the reason, on failure.
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, renameSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** The same name ts/native/index.ts computes; keep the two in step. */
function addonFileName() {
  const { platform, arch } = process
  if (platform !== 'linux') return `ringstate.${platform}-${arch}.node`
  // glibc reports its runtime version; musl does not.
  const glibc = process.report?.getReport?.()?.header?.glibcVersionRuntime
  return `ringstate.${platform}-${arch}-${glibc ? 'gnu' : 'musl'}.node`
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

const cargo = process.env.CARGO ?? 'cargo'
const build = spawnSync(cargo, ['build', '--release', '-p', 'ringstate-node'], { cwd: root, stdio: 'inherit' })
if (build.error) {
  if (build.error.code === 'ENOENT') {
    fail(`'${cargo}' was not found on PATH: install a Rust toolchain (https://rustup.rs) to build the addon`)
  }
  fail(`could not run ${cargo}: ${build.error.message}`)
}
if (build.status !== 0) fail(`cargo build failed (exit ${build.status ?? build.signal})`)

const targetDir = resolve(root, process.env.CARGO_TARGET_DIR ?? 'target')
const built = join(targetDir, 'release', libraryFileName())
if (!existsSync(built)) fail(`cargo succeeded but ${built} does not exist`)

// Copy to a temporary name, then rename: overwriting the file in place would corrupt the
// mapping of any process that has the previous build loaded.
const destination = join(root, addonFileName())
const temporary = `${destination}.${process.pid}.tmp`
try {
  copyFileSync(built, temporary)
  renameSync(temporary, destination)
} catch (error) {
  rmSync(temporary, { force: true })
  fail(`could not copy ${built} to ${destination}: ${error.message}`)
}
console.error(`[build-native] ${destination}`)

#!/usr/bin/env node
// Builds the native addon with the napi-rs CLI (`napi build`, a devDependency) and puts it where the
// loader (ts/native/index.ts) and the platform package look for it.
//
//   node scripts/build-native.mjs                 the addon that ships
//     napi build --platform --release -p ringstate-node -c npm/napi.json
//     -> <repo root>/ringstate.<triple>.node              (the loader's "locally built file")
//     -> <repo root>/npm/<triple>/ringstate.<triple>.node (the platform package @ringstate/<triple>)
//   node scripts/build-native.mjs --test-exports  the test build, with the test-only `diagnostics`
//     the same with --features test-exports, in <target>/test-exports
//     -> <repo root>/ringstate.<triple>.test.node  (loaded by the addon's smoke tests only)
//
// <triple> is <platform>-<arch>[-<libc>] (libc gnu | musl, Linux only), the napi-rs naming.
// `napi build` runs cargo and names the file; it generates no JavaScript binding or .d.ts for this
// crate (that needs the napi-derive macros; ts/native/addon.ts is written by hand instead).
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

const baseTarget = resolve(root, process.env.CARGO_TARGET_DIR ?? 'target')
const targetDir = testExports ? join(baseTarget, 'test-exports') : baseTarget
const outputDir = join(targetDir, 'napi-out')
const napi = join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'napi.cmd' : 'napi')
if (!existsSync(napi)) fail(`${napi} is missing: run npm install (it installs @napi-rs/cli)`)
const cargo = spawnSync(process.env.CARGO ?? 'cargo', ['--version'], { stdio: 'ignore' })
if (cargo.error) fail('cargo was not found on PATH: install a Rust toolchain (https://rustup.rs) to build the addon')
const args = ['build', '--platform', '--release', '-p', 'ringstate-node', '-c', join(root, 'npm', 'napi.json'),
  '--target-dir', targetDir, '-o', outputDir, ...(testExports ? ['--features', 'test-exports'] : [])]
const build = spawnSync(napi, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' })
if (build.error) fail(`could not run ${napi}: ${build.error.message}`)
if (build.status !== 0) fail(`napi build failed (exit ${build.status ?? build.signal})`)

const triple = platformTriple()
const built = join(outputDir, `ringstate.${triple}.node`)
if (!existsSync(built)) fail(`napi build succeeded but ${built} does not exist`)
if (testExports) {
  install(built, join(root, `ringstate.${triple}.test.node`))
} else {
  install(built, join(root, `ringstate.${triple}.node`))
  const platformPackage = join(root, 'npm', triple)
  if (existsSync(join(platformPackage, 'package.json'))) install(built, join(platformPackage, `ringstate.${triple}.node`))
}

#!/usr/bin/env node
// One-time set-up shared by `npm start`, `npm test` and `npm run bench`, so that a fresh clone
// needs no step the README does not show: install npm dependencies (Bun and the napi-rs CLI come
// from npm as devDependencies) when they are missing or older than package.json, then build the
// native addon (scripts/build-native.mjs). Cargo's own change tracking makes the addon build a
// no-op when nothing changed. (Users of the published package need none of this: npm installs the
// prebuilt addon, @ringstate/<triple>, and the compiled dist/.)
import { existsSync, statSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = new Set(process.argv.slice(2))

function run(command, commandArgs, cwd = root) {
  const result = spawnSync(command, commandArgs, { cwd, stdio: 'inherit', shell: process.platform === 'win32' })
  if (result.error) throw result.error
  return result.status ?? 1
}

function mtime(path) {
  return existsSync(path) ? statSync(path).mtimeMs : 0
}

/** npm writes node_modules/.package-lock.json on every install: older than the manifest means stale. */
function installIfStale(dir, marker) {
  const installed = mtime(join(dir, 'node_modules', '.package-lock.json'))
  const stale = !existsSync(join(dir, marker)) ||
    installed < mtime(join(dir, 'package.json')) ||
    installed < mtime(join(dir, 'package-lock.json'))
  if (!stale) return
  console.error(`[setup] npm install in ${dir === root ? '.' : dir}`)
  if (run('npm', ['install', '--no-audit', '--no-fund'], dir) !== 0) {
    console.error('[setup] npm install failed')
    process.exit(1)
  }
}

installIfStale(root, 'node_modules/.bin/bun')
if (args.has('--bench')) installIfStale(join(root, 'bench'), 'node_modules/mitata')

console.error('[setup] building the native addon (napi build --release)')
if (run(process.execPath, [join(root, 'scripts', 'build-native.mjs')]) !== 0) {
  if (args.has('--allow-missing-native')) {
    console.error('[setup] the native addon did not build; continuing with the pure-TypeScript twins')
  } else {
    console.error('[setup] the native addon did not build (is a Rust toolchain installed? https://rustup.rs)')
    process.exit(1)
  }
}

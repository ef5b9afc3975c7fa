/**
 * Loads the native addon once, or says why it did not (subpath export `ringstate/native`).
 *
 * The choice between the native structures and their pure-TypeScript twins is made here, once per
 * process (or Worker), from the `RINGSTATE_NATIVE` environment variable:
 *
 * | `RINGSTATE_NATIVE` | result |
 * |---|---|
 * | unset or empty | the addon when it loads, else `null` (use the twins) |
 * | `0` | always `null`: the twins are forced |
 * | `1` | the addon, or {@link NativeUnavailableError} listing every path tried and why it failed |
 *
 * Paths tried, in order: `RINGSTATE_NATIVE_PATH` when set, then
 * `<package root>/ringstate.<platform>-<arch>[-<libc>].node` (built by `npm run build:native`).
 * Loading goes through `createRequire`, which Bun, Node and Deno all support for `.node` files.
 *
 * @module
 */
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import process from 'node:process'
import { fileURLToPath } from 'node:url'
import { InvalidOptionsError, NativeUnavailableError } from '../errors.ts'
import type { NativeAddon } from './addon.ts'

export type { NativeAddon, NativeCounter, NativeDiagnostics, NativeObjectStats } from './addon.ts'

/** How ringstate runs its hot data structures in this process. */
export interface NativeInfo {
  /** `native` when the addon is loaded, `typescript` when the pure-TS twins are used. */
  mode: 'native' | 'typescript'
  /** The addon's version (native mode). */
  version?: string
  /** The file the addon was loaded from (native mode). */
  path?: string
  /** Why the twins are used (typescript mode): forced, or each path tried and its failure. */
  reason?: string
}

interface LoadState {
  addon: NativeAddon | null
  info: NativeInfo
  error?: Error
}

/** The package root: this file is `<root>/ts/native/index.ts`. */
const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const requireAddon = createRequire(import.meta.url)
let state: LoadState | undefined

/**
 * The addon's file name for this platform, as `scripts/build-native.mjs` writes it:
 * `ringstate.<platform>-<arch>[-<libc>].node`, where libc (`gnu` or `musl`) is given on Linux only.
 *
 * @example
 * ```ts
 * addonFileName() // 'ringstate.linux-x64-gnu.node' on glibc Linux, 'ringstate.darwin-arm64.node' on a Mac
 * ```
 */
export function addonFileName(): string {
  const { platform, arch } = process
  if (platform !== 'linux') return `ringstate.${platform}-${arch}.node`
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
  return `ringstate.${platform}-${arch}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}.node`
}

function candidatePaths(): string[] {
  const paths: string[] = []
  const explicit = process.env.RINGSTATE_NATIVE_PATH
  if (explicit) paths.push(isAbsolute(explicit) ? explicit : resolve(process.cwd(), explicit))
  paths.push(join(packageRoot, addonFileName()))
  return paths
}

function load(): LoadState {
  const mode = process.env.RINGSTATE_NATIVE ?? ''
  if (mode !== '' && mode !== '0' && mode !== '1') {
    const error = new InvalidOptionsError(`RINGSTATE_NATIVE must be 0, 1 or unset, got ${JSON.stringify(mode)}`)
    return { addon: null, info: { mode: 'typescript', reason: error.message }, error }
  }
  if (mode === '0') {
    return { addon: null, info: { mode: 'typescript', reason: 'RINGSTATE_NATIVE=0 forces the pure-TypeScript implementations' } }
  }
  const failures: string[] = []
  for (const path of candidatePaths()) {
    if (!existsSync(path)) {
      failures.push(`${path}: file not found`)
      continue
    }
    try {
      const addon = requireAddon(path) as NativeAddon
      return { addon, info: { mode: 'native', version: addon.version(), path } }
    } catch (error) {
      failures.push(`${path}: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
  const reason = `the native addon could not be loaded; tried:\n  ${failures.join('\n  ')}\n` +
    'build it with `npm run build:native` (needs a Rust toolchain) or set RINGSTATE_NATIVE_PATH'
  if (mode === '1') {
    const error = new NativeUnavailableError(`RINGSTATE_NATIVE=1 demands the native addon, but ${reason}`)
    return { addon: null, info: { mode: 'typescript', reason }, error }
  }
  return { addon: null, info: { mode: 'typescript', reason } }
}

/**
 * The native addon, or `null` when the pure-TypeScript twins are to be used. Decided on the first
 * call and memoised: callers pick their implementation once, at module load, never per call.
 *
 * @throws NativeUnavailableError when `RINGSTATE_NATIVE=1` and the addon cannot be loaded
 * @throws InvalidOptionsError when `RINGSTATE_NATIVE` is neither `0`, `1` nor unset
 * @example
 * ```ts
 * import { loadNative } from 'ringstate/native'
 * const native = loadNative()
 * const makeRing = native ? nativeRing : typescriptRing // chosen once
 * ```
 */
export function loadNative(): NativeAddon | null {
  state ??= load()
  if (state.error) throw state.error
  return state.addon
}

/**
 * Which implementation this process uses and why; never throws.
 *
 * @example
 * ```ts
 * import { nativeInfo } from 'ringstate/native'
 * console.log(nativeInfo()) // { mode: 'native', version: '0.1.0', path: '/app/ringstate.linux-x64-gnu.node' }
 * ```
 */
export function nativeInfo(): NativeInfo {
  state ??= load()
  return { ...state.info }
}

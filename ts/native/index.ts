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
 * | `1` | the addon, or {@link NativeUnavailableError} listing every place tried and why it failed |
 *
 * Places tried, in order, the first that loads wins:
 * 1. `RINGSTATE_NATIVE_PATH`, when set: an explicit override beats anything found on its own;
 * 2. the installed platform package `@ringstate/<platform>-<arch>[-<libc>]` (e.g.
 *    `@ringstate/linux-x64-gnu`), which npm installs from the main package's
 *    `optionalDependencies` on a matching machine: the prebuilt addon, no Rust toolchain needed;
 * 3. `<package root>/ringstate.<platform>-<arch>[-<libc>].node`, a locally built file
 *    (`npm run build:native`, in a clone of the repository).
 * Otherwise the pure-TypeScript twins. {@link nativeInfo} says which was used and why.
 * Loading goes through `createRequire`, which Bun, Node and Deno all support for `.node` files.
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import process from 'node:process'
import { fileURLToPath } from 'node:url'
import { InvalidOptionsError, NativeUnavailableError } from '../errors.ts'
import type { NativeAddon } from './addon.ts'

export type { NativeAddon, NativeHamtMap, NativeObjectStats } from './addon.ts'

/** How ringstate runs its hot data structures in this process. */
export interface NativeInfo {
  /** `native` when the addon is loaded, `typescript` when the pure-TS twins are used. */
  mode: 'native' | 'typescript'
  /**
   * Where the addon came from (native mode): `env` (`RINGSTATE_NATIVE_PATH`), `package` (the
   * installed platform package) or `local` (a file built in this package's root).
   */
  source?: 'env' | 'package' | 'local'
  /** The addon's version (native mode). */
  version?: string
  /** The file the addon was loaded from (native mode). */
  path?: string
  /**
   * Why: in native mode, what was loaded and what was tried before it without success; in
   * typescript mode, that the twins were forced, or each place tried and its failure.
   */
  reason: string
}

interface LoadState {
  addon: NativeAddon | null
  info: NativeInfo
  error?: Error
}

/** One place the addon may be: a file, or a failure found before any file (a package not installed). */
interface Candidate {
  source: 'env' | 'package' | 'local'
  /** How the reason names this place. */
  label: string
  path?: string
  /** Why there is no file to try (a package not installed, or of another version). */
  missing?: string
}

/** The package root: this file is `<root>/ts/native/index.ts`, or `<root>/dist/native/index.js` once compiled. */
const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const requireAddon = createRequire(import.meta.url)
let state: LoadState | undefined

/**
 * This machine's platform triple, the napi-rs naming: `<platform>-<arch>[-<libc>]`, where libc
 * (`gnu` or `musl`) is given on Linux only.
 *
 * @example
 * ```ts
 * platformTriple() // 'linux-x64-gnu' on glibc Linux, 'darwin-arm64' on a Mac
 * ```
 */
export function platformTriple(): string {
  const { platform, arch } = process
  if (platform !== 'linux') return `${platform}-${arch}`
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
  return `${platform}-${arch}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
}

/**
 * The addon's file name for this platform, as `scripts/build-native.mjs` writes it and the
 * platform package ships it: `ringstate.<platform>-<arch>[-<libc>].node`.
 *
 * @example
 * ```ts
 * addonFileName() // 'ringstate.linux-x64-gnu.node' on glibc Linux, 'ringstate.darwin-arm64.node' on a Mac
 * ```
 */
export function addonFileName(): string {
  return `ringstate.${platformTriple()}.node`
}

/**
 * The npm package that carries the prebuilt addon for this platform, an optional dependency of
 * `ringstate`.
 *
 * @example
 * ```ts
 * platformPackageName() // '@ringstate/linux-x64-gnu' on glibc Linux
 * ```
 */
export function platformPackageName(): string {
  return `@ringstate/${platformTriple()}`
}

/** The `version` field of a package.json, or undefined when it cannot be read. */
function manifestVersion(path: string): string | undefined {
  try {
    const version = (JSON.parse(readFileSync(path, 'utf8')) as { version?: unknown }).version
    return typeof version === 'string' ? version : undefined
  } catch {
    return undefined
  }
}

/**
 * The installed platform package's addon file, or why there is none. A package of another version
 * than this one is passed over (as napi-rs loaders do): its addon was built for other bindings.
 */
function platformPackageCandidate(): Candidate {
  const name = platformPackageName()
  const label = `platform package ${name}`
  let manifest: string
  try {
    manifest = requireAddon.resolve(`${name}/package.json`)
  } catch {
    return { source: 'package', label, missing: 'not installed' }
  }
  const installed = manifestVersion(manifest)
  const expected = manifestVersion(join(packageRoot, 'package.json'))
  if (expected !== undefined && installed !== expected) {
    return { source: 'package', label, missing: `version ${installed ?? 'unknown'} installed, ringstate is ${expected}` }
  }
  return { source: 'package', label, path: join(dirname(manifest), addonFileName()) }
}

function candidates(): Candidate[] {
  const list: Candidate[] = []
  const explicit = process.env.RINGSTATE_NATIVE_PATH
  if (explicit) {
    const path = isAbsolute(explicit) ? explicit : resolve(process.cwd(), explicit)
    list.push({ source: 'env', label: `RINGSTATE_NATIVE_PATH ${path}`, path })
  }
  list.push(platformPackageCandidate())
  const local = join(packageRoot, addonFileName())
  list.push({ source: 'local', label: `locally built file ${local}`, path: local })
  return list
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
  for (const candidate of candidates()) {
    const { path } = candidate
    if (path === undefined) {
      failures.push(`${candidate.label}: ${candidate.missing}`)
      continue
    }
    if (!existsSync(path)) {
      failures.push(`${candidate.label}: ${path}: file not found`)
      continue
    }
    try {
      const addon = requireAddon(path) as NativeAddon
      const reason = `loaded the ${candidate.label}` + (failures.length ? `; tried before it:\n  ${failures.join('\n  ')}` : '')
      return { addon, info: { mode: 'native', source: candidate.source, version: addon.version(), path, reason } }
    } catch (error) {
      failures.push(`${candidate.label}: ${path}: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
  const reason = `the native addon could not be loaded; tried:\n  ${failures.join('\n  ')}\n` +
    `install ${platformPackageName()} (npm installs it with ringstate on this platform), build it with ` +
    '`npm run build:native` (needs a Rust toolchain), or set RINGSTATE_NATIVE_PATH'
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
 * console.log(nativeInfo())
 * // { mode: 'native', source: 'package', version: '0.1.0',
 * //   path: '/app/node_modules/@ringstate/linux-x64-gnu/ringstate.linux-x64-gnu.node',
 * //   reason: 'loaded the platform package @ringstate/linux-x64-gnu' }
 * ```
 */
export function nativeInfo(): NativeInfo {
  state ??= load()
  return { ...state.info }
}

// The loader and the addon under Bun. Runs in both native modes: with the addon (RINGSTATE_NATIVE=1
// or unset with a built addon) every smoke case, the Worker and the leak test run against the test
// build (cargo feature test-exports, ts/native/test-addon.ts) loaded beside the published one;
// with RINGSTATE_NATIVE=0 the loader must return null. Loader behaviour that depends on the
// environment (forced modes, bogus paths, an installed platform package, a missing addon) is
// checked in subprocesses, in every mode.
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { NativeTestAddon } from './addon.ts'
import { addonFileName, loadNative, nativeInfo, platformPackageName, platformTriple } from './index.ts'
import { cargoVersion, smokeCases } from './smoke-cases.mjs'
import { loadTestAddon, testAddonPath } from './test-addon.ts'

const native = loadNative()
const here = fileURLToPath(new URL('.', import.meta.url))
const repoLoader = join(here, 'index.ts')

let scratch: string
let probeScript: string
let roots = 0

/**
 * A copy of the loader in a fresh package root under the scratch directory, with, on request, the
 * addon as a locally built file and/or as an installed platform package
 * (`<root>/node_modules/@ringstate/<triple>`). Returns the loader's path and the addon paths.
 */
function isolatedPackage(options: { local?: boolean; platformPackage?: boolean; platformVersion?: string } = {}) {
  const root = join(scratch, `pkg${++roots}`)
  mkdirSync(join(root, 'ts', 'native'), { recursive: true })
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'ringstate', version: cargoVersion(), type: 'module' }))
  for (const file of ['native/index.ts', 'native/addon.ts', 'errors.ts']) copyFileSync(join(here, '..', file), join(root, 'ts', file))
  const local = join(root, addonFileName())
  const packageDir = join(root, 'node_modules', ...platformPackageName().split('/'))
  const packaged = join(packageDir, addonFileName())
  if (options.local) copyFileSync(nativeInfo().path!, local)
  if (options.platformPackage) {
    mkdirSync(packageDir, { recursive: true })
    const version = options.platformVersion ?? cargoVersion()
    writeFileSync(join(packageDir, 'package.json'), JSON.stringify({ name: platformPackageName(), version, main: addonFileName() }))
    copyFileSync(nativeInfo().path!, packaged)
  }
  return { root, loader: join(root, 'ts', 'native', 'index.ts'), local, packaged }
}

beforeAll(() => {
  scratch = mkdtempSync(join(tmpdir(), 'ringstate-native-'))
  probeScript = join(scratch, 'probe.ts')
  writeFileSync(probeScript, `
    const { loadNative, nativeInfo } = await import(process.env.PROBE_LOADER!)
    let outcome: Record<string, unknown>
    try {
      const addon = loadNative()
      outcome = { loaded: addon !== null, version: addon?.version() }
    } catch (e: any) {
      outcome = { error: { name: e.name, code: e.code, message: e.message } }
    }
    console.log(JSON.stringify({ ...outcome, info: nativeInfo() }))
  `)
})
afterAll(() => rmSync(scratch, { recursive: true, force: true }))

interface ProbeResult {
  loaded?: boolean
  version?: string
  error?: { name: string; code: string; message: string }
  info: { mode: string; source?: string; version?: string; path?: string; reason: string }
}

/** Runs the loader in a fresh Bun process with exactly the RINGSTATE_* variables given. */
function probe(loader: string, env: Record<string, string>): ProbeResult {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RINGSTATE_NATIVE')))
  const child = Bun.spawnSync([process.execPath, probeScript], { env: { ...inherited, ...env, PROBE_LOADER: loader } })
  const stdout = child.stdout.toString()
  if (child.exitCode !== 0) throw new Error(`probe exited ${child.exitCode}: ${child.stderr.toString()}`)
  return JSON.parse(stdout.trim().split('\n').at(-1)!)
}

describe('the loader', () => {
  test('chooses once: loadNative returns the same result on every call, consistent with nativeInfo', () => {
    expect(loadNative()).toBe(native)
    const info = nativeInfo()
    if (native) {
      expect(info).toEqual({ mode: 'native', source: info.source!, version: native.version(), path: info.path!, reason: info.reason })
      expect(info.path!.endsWith(process.env.RINGSTATE_NATIVE_PATH ? '' : addonFileName())).toBe(true)
      expect(info.reason).toStartWith('loaded the ')
    } else {
      expect(info.mode).toBe('typescript')
      expect(info.reason).toBeString()
    }
  })

  test('names the addon file and the platform package for the platform, with the libc on Linux only', () => {
    const libc = process.platform === 'linux' ? '-(gnu|musl)' : ''
    expect(platformTriple()).toMatch(new RegExp(`^${process.platform}-${process.arch}${libc}$`))
    expect(addonFileName()).toBe(`ringstate.${platformTriple()}.node`)
    expect(platformPackageName()).toBe(`@ringstate/${platformTriple()}`)
  })

  test('RINGSTATE_NATIVE=0 makes loadNative return null and nativeInfo say typescript', () => {
    const result = probe(repoLoader, { RINGSTATE_NATIVE: '0' })
    expect(result.loaded).toBe(false)
    expect(result.info.mode).toBe('typescript')
    expect(result.info.reason).toContain('RINGSTATE_NATIVE=0')
  })

  test('RINGSTATE_NATIVE=1 with a bogus path, no platform package and no built addon throws NATIVE_UNAVAILABLE listing every place tried', () => {
    const bogus = join(scratch, 'does-not-exist.node')
    const { loader, local } = isolatedPackage()
    const result = probe(loader, { RINGSTATE_NATIVE: '1', RINGSTATE_NATIVE_PATH: bogus })
    expect(result.error?.name).toBe('NativeUnavailableError')
    expect(result.error?.code).toBe('NATIVE_UNAVAILABLE')
    expect(result.error?.message).toContain(`RINGSTATE_NATIVE_PATH ${bogus}: ${bogus}: file not found`)
    expect(result.error?.message).toContain(`platform package ${platformPackageName()}: not installed`)
    expect(result.error?.message).toContain(`locally built file ${local}: ${local}: file not found`)
    expect(result.info.mode).toBe('typescript')
  })

  test('a file that exists but is not a loadable library is reported with the runtime error text', () => {
    const garbage = join(scratch, 'garbage.node')
    writeFileSync(garbage, 'this is not a shared library')
    const result = probe(isolatedPackage().loader, { RINGSTATE_NATIVE: '1', RINGSTATE_NATIVE_PATH: garbage })
    expect(result.error?.code).toBe('NATIVE_UNAVAILABLE')
    const line = result.error!.message.split('\n').find((l) => l.includes(garbage))!
    expect(line).not.toContain('file not found')
    expect(line.length).toBeGreaterThan(`  ${garbage}: `.length)
  })

  test('without RINGSTATE_NATIVE a missing addon falls back to the twins and says why', () => {
    const { loader, local } = isolatedPackage()
    const result = probe(loader, {})
    expect(result.loaded).toBe(false)
    expect(result.info.mode).toBe('typescript')
    expect(result.info.reason).toContain(`platform package ${platformPackageName()}: not installed`)
    expect(result.info.reason).toContain(`${local}: file not found`)
  })

  test('an unrecognised RINGSTATE_NATIVE value is INVALID_OPTIONS', () => {
    const result = probe(isolatedPackage().loader, { RINGSTATE_NATIVE: 'yes' })
    expect(result.error?.code).toBe('INVALID_OPTIONS')
  })
})

if (native) {
  // Loaded only with the addon: the test build exists wherever the published one was built by
  // npm test (scripts/test.mjs builds both); a missing test build fails here, loudly.
  const testAddon: NativeTestAddon = loadTestAddon()

  describe('the addon', () => {
    for (const [name, run] of smokeCases(testAddon, { production: native })) test(name, run)

    test('the published addon carries no test-only exports', () => {
      expect('diagnostics' in native).toBe(false)
      expect(Object.keys(native).sort()).toEqual(['HamtMap', 'hamtFromBytes', 'ringCount', 'ringCreate', 'ringDrop', 'ringMetrics',
        'ringRead', 'ringRelease', 'ringRetain', 'ringWrite', 'version'])
      expect(nativeInfo().path).not.toBe(testAddonPath)
    })

    test('an installed platform package is preferred to a locally built file, and nativeInfo says so', () => {
      const { loader, packaged } = isolatedPackage({ local: true, platformPackage: true })
      const result = probe(loader, { RINGSTATE_NATIVE: '1' })
      expect(result).toEqual({
        loaded: true,
        version: cargoVersion(),
        info: { mode: 'native', source: 'package', version: cargoVersion(), path: packaged, reason: `loaded the platform package ${platformPackageName()}` },
      })
    })

    test('without the platform package the locally built file is used, and nativeInfo says the package is not installed', () => {
      const { loader, local } = isolatedPackage({ local: true })
      const result = probe(loader, { RINGSTATE_NATIVE: '1' })
      expect(result.info).toEqual({
        mode: 'native',
        source: 'local',
        version: cargoVersion(),
        path: local,
        reason: `loaded the locally built file ${local}; tried before it:\n  platform package ${platformPackageName()}: not installed`,
      })
    })

    test('a platform package of another version is passed over for the locally built file, and the reason says so', () => {
      const { loader, local } = isolatedPackage({ local: true, platformPackage: true, platformVersion: '0.0.1' })
      const result = probe(loader, { RINGSTATE_NATIVE: '1' })
      expect(result.info.source).toBe('local')
      expect(result.info.path).toBe(local)
      expect(result.info.reason).toContain(`platform package ${platformPackageName()}: version 0.0.1 installed, ringstate is ${cargoVersion()}`)
    })

    test('RINGSTATE_NATIVE_PATH is tried before the platform package and the package root', () => {
      const copy = join(scratch, 'copied.node')
      copyFileSync(nativeInfo().path!, copy)
      const result = probe(isolatedPackage({ local: true, platformPackage: true }).loader, { RINGSTATE_NATIVE: '1', RINGSTATE_NATIVE_PATH: copy })
      expect(result).toEqual({
        loaded: true,
        version: cargoVersion(),
        info: { mode: 'native', source: 'env', version: cargoVersion(), path: copy, reason: `loaded the RINGSTATE_NATIVE_PATH ${copy}` },
      })
    })

    test('a Worker loads the addon and shares the static memory of the process', async () => {
      const d = testAddon.diagnostics
      const before = d.sharedCounterAdd(7)
      const worker = new Worker(new URL('./worker-fixture.ts', import.meta.url).href)
      try {
        const reply = new Promise<{ version?: string; total?: number; error?: string }>((resolve, reject) => {
          worker.onmessage = (event) => resolve(event.data)
          worker.onerror = (event) => reject(new Error(event.message))
        })
        worker.postMessage(5)
        expect(await reply).toEqual({ version: testAddon.version(), total: before + 5 })
        expect(d.sharedCounterAdd(0)).toBe(before + 5)
      } finally {
        worker.terminate()
      }
    })

    test('200k wrapped objects and external buffers are all finalized under GC and RSS stays bounded', async () => {
      const d = testAddon.diagnostics
      const bufferBytes = 4096
      // Bun runs Node-API finalizers from the event loop, not inside the collection, so the loop
      // yields after each forced collection as a real program's event loop would.
      const collect = async () => {
        Bun.gc(true)
        await new Promise((resolve) => setImmediate(resolve))
      }
      const churn = async (iterations: number) => {
        for (let i = 0; i < iterations; i++) {
          new d.Counter(i)
          d.externalBuffer(bufferBytes)
          if (i % 5000 === 4999) await collect()
        }
      }
      const outstanding = () => {
        const c = d.counterStats()
        const e = d.externalStats()
        return { counters: c.created - c.dropped, externals: e.created - e.dropped }
      }
      // Warm up so allocator and heap sizes settle before the baseline is taken.
      await churn(20_000)
      await collect()
      const rssBefore = process.memoryUsage.rss()
      const createdBefore = d.counterStats().created + d.externalStats().created
      await churn(200_000)
      expect(d.counterStats().created + d.externalStats().created - createdBefore).toBe(400_000)
      for (let round = 0; round < 100; round++) {
        await collect()
        const left = outstanding()
        if (left.counters < 1000 && left.externals < 1000) break
      }
      // A few objects may stay alive through conservative stack scanning; a leak would leave
      // hundreds of thousands.
      const left = outstanding()
      expect(left.counters).toBeLessThan(1000)
      expect(left.externals).toBeLessThan(1000)
      // Leaking the buffers alone would grow RSS by 200_000 * 4 KiB = 800 MiB.
      const growth = process.memoryUsage.rss() - rssBefore
      expect(growth).toBeLessThan(64 * 1024 * 1024)
    })
  })
} else {
  describe('without the addon', () => {
    test('loadNative returns null only when RINGSTATE_NATIVE is not 1', () => {
      expect(process.env.RINGSTATE_NATIVE).not.toBe('1')
      expect(native).toBeNull()
      expect(nativeInfo().mode).toBe('typescript')
    })
  })
}

// The test build of the addon (cargo feature `test-exports`: the `diagnostics` probes), for the
// addon's own tests under Bun and Deno. Not exported and not published: the addon users get
// (ts/native/index.ts) has no test-only members.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { NativeTestAddon } from './addon.ts'
import { platformTriple } from './index.ts'

/** `<repo root>/ringstate.<triple>.test.node`, where `node scripts/build-native.mjs --test-exports` puts it. */
export const testAddonPath = join(fileURLToPath(new URL('../..', import.meta.url)), `ringstate.${platformTriple()}.test.node`)

/** Loads the test build; throws, saying how to build it, when it is missing. */
export function loadTestAddon(): NativeTestAddon {
  if (!existsSync(testAddonPath)) {
    throw new Error(`the test build of the addon is missing at ${testAddonPath}: run node scripts/build-native.mjs --test-exports`)
  }
  return createRequire(import.meta.url)(testAddonPath) as NativeTestAddon
}

// Types for smoke-cases.mjs (plain JavaScript so that Node can run it without a TypeScript step).
import type { NativeAddon, NativeTestAddon } from './addon.ts'

/** The workspace version in Cargo.toml, which the addon reports as version(). */
export function cargoVersion(): string
/**
 * The shared smoke cases, as [sentence, fn] pairs; each fn throws on failure. `addon` is the test
 * build; `production`, the published build loaded beside it; `runtimeChecksMethods`, true where the
 * runtime refuses a foreign `this` for class methods before native code runs (Node).
 */
export function smokeCases(
  addon: NativeTestAddon,
  options?: { production?: NativeAddon; runtimeChecksMethods?: boolean },
): Array<[string, () => void]>

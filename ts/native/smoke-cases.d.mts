// Types for smoke-cases.mjs (plain JavaScript so that Node can run it without a TypeScript step).
import type { NativeAddon } from './addon.ts'

/** The workspace version in Cargo.toml, which the addon reports as version(). */
export function cargoVersion(): string
/** The shared smoke cases, as [sentence, fn] pairs; each fn throws on failure. */
export function smokeCases(addon: NativeAddon): Array<[string, () => void]>

// Worker body for native.test.ts and smoke.deno.ts: loads the test build of the addon inside a
// Worker thread, adds the number it is sent to the process-global counter, and reports what the
// addon saw.
import { loadTestAddon } from './test-addon.ts'

declare const self: Worker

self.onmessage = (event: MessageEvent<number>) => {
  const addon = loadTestAddon()
  postMessage({ version: addon.version(), total: addon.diagnostics.sharedCounterAdd(event.data) })
}

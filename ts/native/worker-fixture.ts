// Worker body for native.test.ts: loads the addon through the loader inside a Worker thread, adds
// the number it is sent to the process-global counter, and reports what the addon saw.
import { loadNative } from './index.ts'

declare const self: Worker

self.onmessage = (event: MessageEvent<number>) => {
  const native = loadNative()
  if (!native) {
    postMessage({ error: 'the addon did not load in the Worker' })
    return
  }
  postMessage({ version: native.version(), total: native.diagnostics.sharedCounterAdd(event.data) })
}

// The consumer side of bench/bus.bench.ts's cross-thread benchmark: counts events until it has
// `total`, then reports 'done'. Modes: a SharedRing handle, per-event postMessage, batched postMessage.
import { SharedRing, type SharedRingHandle } from '../ts/bus/shared-ring.ts'

declare const self: Worker
type Start = { mode: 'ring'; handle: SharedRingHandle; total: number } | { mode: 'message' | 'batch'; total: number }

let expected = 0
let received = 0
self.onmessage = async ({ data }: MessageEvent) => {
  if (data && typeof data === 'object' && 'mode' in data) {
    const start = data as Start
    expected = start.total
    received = 0
    if (start.mode === 'ring') {
      const ring = SharedRing.attach<{ type: string; n: number }>(start.handle)
      const stop = new AbortController()
      self.postMessage('ready')
      await ring.consume(() => {
        if (++received === expected) stop.abort()
      }, { signal: stop.signal })
      self.postMessage('done')
      return
    }
    self.postMessage('ready')
    return
  }
  received += Array.isArray(data) ? data.length : 1
  if (received === expected) self.postMessage('done')
}

// A consumer Worker for shared-ring.test.ts: attaches to the ring it is sent, consumes until told
// to stop, then reports the ids it handled in the order it handled them.
import { SharedRing, type SharedRingHandle } from './shared-ring.ts'

declare const self: Worker
const stop = new AbortController()
self.onmessage = async ({ data }: MessageEvent<SharedRingHandle | 'stop'>) => {
  if (data === 'stop') {
    stop.abort()
    return
  }
  const ring = SharedRing.attach<{ type: string; id: number }>(data)
  const ids: number[] = []
  self.postMessage('ready')
  await ring.consume((event) => void ids.push(event.id), { signal: stop.signal })
  self.postMessage(ids)
}

// A consumer worker thread for the Node suite (runtimes.node.mjs): attaches to the SharedRing it is
// sent (through the compiled dist/), consumes until told to stop, then reports the ids it handled
// in the order it handled them. The Node twin of ts/bus/shared-ring.fixture.ts.
import { parentPort } from 'node:worker_threads'
import { SharedRing } from '../../dist/bus/index.js'

const stop = new AbortController()
parentPort.on('message', async (data) => {
  if (data === 'stop') {
    stop.abort()
    return
  }
  const ring = SharedRing.attach(data)
  const ids = []
  parentPort.postMessage('ready')
  await ring.consume((event) => void ids.push(event.id), { signal: stop.signal })
  parentPort.postMessage(ids)
})

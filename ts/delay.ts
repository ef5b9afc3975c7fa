/** Timers shared by the parts that wait: the projection runner's backoff, the CLI's retries, a follower's retry of a failed read. */

/**
 * Resolves after `ms`, or as soon as `signal` aborts (never rejects: the caller checks the signal),
 * and leaves no timer or listener behind either way.
 */
export function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}

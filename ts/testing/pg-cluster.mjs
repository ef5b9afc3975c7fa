/**
 * A throwaway PostgreSQL cluster for tests and scripts: `initdb` + `pg_ctl` in a temp directory,
 * listening on 127.0.0.1 on a free port (and a unix socket inside the temp directory), trust auth.
 *
 * Plain JavaScript ESM so Node scripts (scripts/test.mjs) and Bun can both load it.
 *
 * Durability: by default the cluster runs with `fsync=off` and `full_page_writes=off`. Our crash
 * tests kill *client* processes (the appender), never the server, and a transaction the server
 * acknowledged survives a client's death whatever fsync says; turning fsync off only removes disk
 * flushes that nothing here can observe. `synchronous_commit` stays on, so commit semantics seen by
 * clients are the production ones. Pass `{ durable: true }` to test server crashes.
 *
 * Root: initdb refuses to run as root, and CI runs as root, so when `process.getuid() === 0` the
 * binaries run as the `postgres` user (or `nobody`) through `runuser -u <user> --`, on a temp
 * directory chowned to that user.
 *
 * @example
 * ```js
 * import { startCluster } from './pg-cluster.mjs'
 * const cluster = await startCluster()
 * try { console.log(cluster.url) } finally { await cluster.stop() }
 * ```
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * The directory holding initdb and pg_ctl: `RINGSTATE_PG_BINDIR` when set (to pick a version),
 * else `pg_config --bindir`, then the newest /usr/lib/postgresql/<version>/bin, then PATH.
 * @returns {string | undefined} undefined when the binaries should be looked up on PATH
 */
export function findBinDir() {
  if (process.env.RINGSTATE_PG_BINDIR) return process.env.RINGSTATE_PG_BINDIR
  const hasTools = (dir) => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
    if (dir && hasTools(dir)) return dir
  } catch {
    // no pg_config: fall through to the distribution layout
  }
  const root = '/usr/lib/postgresql'
  if (existsSync(root)) {
    const versions = readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a))
    for (const version of versions) {
      const dir = join(root, version, 'bin')
      if (hasTools(dir)) return dir
    }
  }
  return undefined
}

/** A user other than root that may own the data directory, as { name, uid, gid }. */
function unprivilegedUser() {
  for (const name of ['postgres', 'nobody']) {
    const uid = spawnSync('id', ['-u', name], { encoding: 'utf8' })
    const gid = spawnSync('id', ['-g', name], { encoding: 'utf8' })
    if (uid.status === 0 && gid.status === 0) {
      return { name, uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
    }
  }
  throw new Error('running as root, and neither a "postgres" nor a "nobody" user exists to run initdb')
}

/** A TCP port that was free a moment ago (the kernel picks it; we release it for the postmaster). */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/**
 * Start a fresh cluster. Resolves once it accepts connections.
 *
 * @param {{ durable?: boolean }} [options] durable: keep fsync on (for tests that crash the server)
 * @returns {Promise<{ url: string, port: number, dir: string, stop(): Promise<void> }>}
 *   `url` reaches the `postgres` database as the `postgres` superuser over TCP; `stop()` runs
 *   `pg_ctl stop -m immediate` and removes the directory (calling it twice is harmless); `crash()`
 *   stops the server the same way but keeps the directory, `restart()` starts it again on the port.
 */
export async function startCluster(options = {}) {
  const binDir = findBinDir()
  const bin = (name) => (binDir ? join(binDir, name) : name)
  const asRoot = typeof process.getuid === 'function' && process.getuid() === 0
  const user = asRoot ? unprivilegedUser() : undefined
  const run = (name, args) => {
    const [command, argv] = user ? ['runuser', ['-u', user.name, '--', bin(name), ...args]] : [bin(name), args]
    const result = spawnSync(command, argv, { encoding: 'utf8', cwd: dir })
    if (result.error) throw new Error(`${name} could not run: ${result.error.message}`)
    return result
  }
  // The same without blocking the event loop: a crash test keeps its clients running meanwhile.
  const runAsync = (name, args) => {
    const [command, argv] = user ? ['runuser', ['-u', user.name, '--', bin(name), ...args]] : [bin(name), args]
    return new Promise((resolve) => {
      execFile(command, argv, { encoding: 'utf8', cwd: dir }, (error, stdout, stderr) => {
        resolve({ status: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr: stderr || error?.message || '' })
      })
    })
  }

  const dir = mkdtempSync(join(tmpdir(), 'ringstate-pg-'))
  const data = join(dir, 'data')
  const log = join(dir, 'postgres.log')
  let stopped = false
  const stopSync = () => {
    if (stopped) return
    stopped = true
    if (existsSync(join(data, 'postmaster.pid'))) run('pg_ctl', ['stop', '-D', data, '-m', 'immediate', '-w'])
    rmSync(dir, { recursive: true, force: true })
  }

  try {
    if (user) chownSync(dir, user.uid, user.gid)
    const init = run('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync'])
    if (init.status !== 0) throw new Error(`initdb failed (exit ${init.status}): ${init.stderr.trim()}`)

    const durability = options.durable ? [] : ['-c fsync=off', '-c full_page_writes=off']
    // A port can be taken between freePort() and the postmaster's bind: try a few.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort()
      const settings = [
        `-p ${port}`,
        `-k ${dir}`,
        "-c listen_addresses='127.0.0.1'",
        '-c max_connections=300',
        '-c shared_buffers=32MB',
        ...durability,
      ].join(' ')
      const start = run('pg_ctl', ['start', '-D', data, '-w', '-t', '60', '-l', log, '-o', settings])
      if (start.status === 0) {
        const url = `postgres://postgres@127.0.0.1:${port}/postgres`
        // For tests that crash the server itself: stop it like a power cut, start it on the same port.
        const crash = async () => {
          const result = await runAsync('pg_ctl', ['stop', '-D', data, '-m', 'immediate', '-w'])
          if (result.status !== 0) throw new Error(`pg_ctl stop -m immediate failed (exit ${result.status}): ${result.stderr.trim()}`)
        }
        const restart = async () => {
          const result = await runAsync('pg_ctl', ['start', '-D', data, '-w', '-t', '60', '-l', log, '-o', settings])
          if (result.status !== 0) throw new Error(`pg_ctl start failed (exit ${result.status}): ${result.stderr.trim()}`)
        }
        return { url, port, dir, stop: async () => stopSync(), stopSync, crash, restart }
      }
      if (attempt >= 3) {
        const tail = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-10).join('\n') : ''
        throw new Error(`pg_ctl start failed (exit ${start.status}): ${start.stderr.trim()}\n${tail}`)
      }
    }
  } catch (error) {
    stopSync()
    throw error
  }
}

#!/usr/bin/env node
// `ringstate`, the command installed by npm (node_modules/.bin/ringstate, npx ringstate): a small
// launcher so the command works after `npm install` without a global Bun. It picks the runtime
// that runs the command line (ts/cli.ts, compiled to dist/cli.js):
//
//   --version / -v   answered here from package.json, with no runtime to start;
//   under Bun        the TypeScript sources (ts/cli.ts), as Bun-first code is written to run;
//   under Deno       the compiled build (dist/cli.js);
//   under Node       Bun when it is on PATH: the process re-executes this launcher under Bun,
//                    because `bench` runs Bun and a Node before 22.13/23.4 has no node:sqlite
//                    for the embedded default store (sqlite:./data/ringstate.db); otherwise
//                    Node itself runs dist/cli.js in this process (memory: and postgres://
//                    stores work on every Node, SQLite on Node 22.13+/23.4+/24+).
//   RINGSTATE_RUNTIME=bun|node|deno forces one (re-executing under bun or deno, found on PATH).
import { spawn } from 'node:child_process'
import { accessSync, constants, readFileSync } from 'node:fs'
import { delimiter, dirname, join } from 'node:path'
import process from 'node:process'
import { fileURLToPath, pathToFileURL } from 'node:url'

const launcher = fileURLToPath(import.meta.url)
const root = join(dirname(launcher), '..')
const args = process.argv.slice(2)

if (args.length === 1 && (args[0] === '--version' || args[0] === '-v')) {
  console.log(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version)
  process.exit(0)
}

/** The runtime running this file. */
const current = process.versions.bun ? 'bun' : typeof globalThis.Deno !== 'undefined' ? 'deno' : 'node'
const forced = process.env.RINGSTATE_RUNTIME
if (forced !== undefined && !['bun', 'node', 'deno'].includes(forced)) {
  console.error(`ringstate: RINGSTATE_RUNTIME must be bun, node or deno, got ${JSON.stringify(forced)}`)
  process.exit(2)
}

/** An executable named `name` on PATH, or undefined. */
function onPath(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue
    for (const file of process.platform === 'win32' ? [`${name}.exe`, `${name}.cmd`] : [name]) {
      try {
        accessSync(join(dir, file), constants.X_OK)
        return join(dir, file)
      } catch {}
    }
  }
  return undefined
}

/** Runs this launcher again under `runtime` and exits with its status (signals pass through). */
function reexec(runtime, executable) {
  const runtimeArgs = runtime === 'deno' ? ['run', '--allow-all', launcher, ...args] : [launcher, ...args]
  // The child must not re-execute again: it runs the command line itself.
  const child = spawn(executable, runtimeArgs, { stdio: 'inherit', env: { ...process.env, RINGSTATE_RUNTIME: runtime } })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal))
  child.on('error', (error) => {
    console.error(`ringstate: could not start ${executable}: ${error.message}`)
    process.exit(1)
  })
  child.on('exit', (code, signal) => {
    if (signal) process.kill(process.pid, signal)
    else process.exit(code ?? 1)
  })
}

/** Runs the command line in this process. */
async function run(entry) {
  const { main } = await import(pathToFileURL(join(root, entry)).href)
  try {
    process.exitCode = await main(args)
  } catch (error) {
    const code = typeof error?.code === 'string' ? ` [${error.code}]` : ''
    console.error(`ringstate: ${error?.message ?? String(error)}${code}`)
    process.exitCode = 1
  }
}

const wanted = forced ?? (current === 'node' && onPath('bun') ? 'bun' : current)
if (wanted === current) {
  await run(current === 'bun' ? 'ts/cli.ts' : 'dist/cli.js')
} else {
  const executable = onPath(wanted)
  if (!executable) {
    console.error(`ringstate: RINGSTATE_RUNTIME=${wanted}, but ${wanted} is not on PATH`)
    process.exit(1)
  }
  reexec(wanted, executable)
}

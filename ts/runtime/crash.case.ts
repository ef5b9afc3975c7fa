/**
 * The SIGKILL rounds behind the store source's guarantee, for any durable backend: a worker
 * process (testdata/crash-child.ts) is killed again and again while it works, by itself at chosen
 * points (inside a command before and after it records its run, just before and after each write:
 * the append that carries the output and the checkpoint, the checkpoint marker of a command that
 * yields nothing) and by the parent at random times, and restarted until it finishes. Then every
 * input event whose command yields an output has exactly one, and no command ran again for a
 * position at or below the position the worker resumed after.
 */
import { expect } from 'bun:test'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { openStore } from '../store/index.ts'
import { resumePosition } from './store.ts'
import { seededRandom } from '../testing/seeded-random.ts'

const childScript = join(import.meta.dir, 'testdata', 'crash-child.ts')

/** Lives killed (by themselves or the parent) before a worker may finish: the tests require it. */
export const MIN_KILLS = 5

export interface CrashOutcome {
  lives: number
  selfKills: number
  parentKills: number
}

/**
 * Appends `inputs` Input events to the empty store at `url`, then runs workers until one finishes.
 * `sideFile` must not exist yet.
 */
export async function crashRounds(url: string, sideFile: string, inputs: number, seed: number): Promise<CrashOutcome> {
  if (existsSync(sideFile)) throw new Error(`${sideFile} exists already`)
  const store = await openStore(url)
  try {
    const { position } = await store.append(Array.from({ length: inputs }, (_, n) => ({ type: 'Input', data: { n } })))
    expect(position).toBe(BigInt(inputs))
  } finally {
    await store.close()
  }

  const random = seededRandom(seed)
  const outcome: CrashOutcome = { lives: 0, selfKills: 0, parentKills: 0 }
  for (;;) {
    outcome.lives++
    if (outcome.lives > 500) throw new Error(`no worker finished in 500 lives (seed ${seed})`)
    const child = Bun.spawn(
      [process.execPath, childScript, url, sideFile, String(inputs), String(seed * 1000 + outcome.lives), '30'],
      { stdin: 'ignore', stdout: 'inherit', stderr: 'inherit' },
    )
    // Every third life the parent also kills at a random moment (start-up and mid-append included),
    // and every life until MIN_KILLS lives have been killed: the self-kills are random, and a seed
    // whose workers seldom kill themselves (46308 on PostgreSQL: 3 in 5 lives) would otherwise
    // test too few crashes.
    let parentKilled = false
    const timer =
      outcome.lives % 3 === 0 || outcome.selfKills + outcome.parentKills < MIN_KILLS
        ? setTimeout(() => {
            parentKilled = true
            child.kill('SIGKILL')
          }, 20 + Math.floor(random() * 300))
        : undefined
    const code = await child.exited
    if (timer !== undefined) clearTimeout(timer)
    if (child.signalCode === 'SIGKILL') {
      if (parentKilled) outcome.parentKills++
      else outcome.selfKills++
      continue
    }
    if (code !== 0) throw new Error(`the worker failed with exit code ${code} (seed ${seed}, life ${outcome.lives})`)
    break
  }

  // Exactly one output per input.
  const check = await openStore(url)
  try {
    const outputs = await check.query([{ types: ['Output'] }])
    const perInput = new Map<string, number>()
    for (const event of outputs) {
      const tag = event.tags.find((t) => t.startsWith('input:'))!
      perInput.set(tag, (perInput.get(tag) ?? 0) + 1)
    }
    // Inputs at positions divisible by 4 yield nothing (see the child).
    const producing = Array.from({ length: inputs }, (_, i) => i + 1).filter((p) => p % 4 !== 0)
    expect(outputs.length).toBe(producing.length)
    for (const p of producing) expect(perInput.get(`input:${p}`)).toBe(1)
    expect(outputs.map((e) => e.id).sort()).toEqual(producing.map((p) => `worker:${p}:0`).sort())
    expect(await resumePosition(check, 'worker')).toBe(BigInt(inputs))
  } finally {
    await check.close()
  }

  // No command ran again at or below the position a life resumed after.
  const lines = readFileSync(sideFile, 'utf8').trim().split('\n')
  let resumedAfter = -1n
  const ran = new Set<bigint>()
  const violations: string[] = []
  for (const line of lines) {
    const [kind, value] = line.split(' ')
    if (kind === 'start') resumedAfter = BigInt(value!)
    else if (kind === 'ran') {
      const position = BigInt(value!)
      if (position <= resumedAfter) violations.push(`ran ${position} after resuming after ${resumedAfter}`)
      ran.add(position)
    }
  }
  expect(violations).toEqual([])
  expect(ran.size).toBe(inputs)
  return outcome
}

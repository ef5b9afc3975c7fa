/**
 * A `fromStore` worker killed with SIGKILL again and again while it works (see crash.case.ts), on
 * SQLite and PostgreSQL: exactly one output per input, no command repeated at or below the checkpoint.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freshDatabase } from '../testing/postgres.ts'
import { crashRounds, MIN_KILLS } from './crash.case.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-runtime-crash-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('a fromStore worker killed with SIGKILL while it works', () => {
  test('on SQLite: every input has exactly one output and no command ran again at or below the checkpoint', async () => {
    const seed = Number(process.env.CRASH_SEED ?? Date.now() % 100_000)
    console.log(`sqlite crash rounds, seed ${seed}`)
    const outcome = await crashRounds(`sqlite:${join(dir, 'crash.db')}`, join(dir, 'sqlite-side.log'), 80, seed)
    console.log(`sqlite: ${outcome.lives} lives, ${outcome.selfKills} self-kills, ${outcome.parentKills} parent kills`)
    expect(outcome.selfKills + outcome.parentKills).toBeGreaterThanOrEqual(MIN_KILLS)
  })

  test('on PostgreSQL: every input has exactly one output and no command ran again at or below the checkpoint', async () => {
    await using db = await freshDatabase()
    const seed = Number(process.env.CRASH_SEED ?? Date.now() % 100_000)
    console.log(`postgres crash rounds, seed ${seed}`)
    const outcome = await crashRounds(db.url, join(dir, 'postgres-side.log'), 80, seed)
    console.log(`postgres: ${outcome.lives} lives, ${outcome.selfKills} self-kills, ${outcome.parentKills} parent kills`)
    expect(outcome.selfKills + outcome.parentKills).toBeGreaterThanOrEqual(MIN_KILLS)
  })
})

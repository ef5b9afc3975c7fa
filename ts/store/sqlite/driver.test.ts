import { afterAll, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isBusyError, sqliteDriver } from './driver.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-sqlite-driver-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('the SQLite driver on Bun', () => {
  test('is bun:sqlite itself, unwrapped, reading integers as bigint', async () => {
    const open = await sqliteDriver()
    expect(await sqliteDriver()).toBe(open)
    const db = open(join(dir, 'plain.db'), true)
    try {
      expect(db).toBeInstanceOf(Database)
      db.exec('CREATE TABLE t (x INTEGER)')
      expect(db.prepare('INSERT INTO t VALUES (?)').run(9007199254740993n).changes).toBe(1)
      expect(db.query('SELECT x FROM t').get()).toEqual({ x: 9007199254740993n })
      expect(db.query('SELECT x FROM t WHERE x = 0').get()).toBeNull()
    } finally {
      db.close()
    }
  })

  test('a write lock held by another connection is a busy error; other failures are not', async () => {
    const open = await sqliteDriver()
    const path = join(dir, 'locked.db')
    const holder = open(path, true)
    const other = open(path, true)
    try {
      holder.exec('PRAGMA journal_mode = WAL')
      other.exec('PRAGMA busy_timeout = 0')
      holder.exec('BEGIN IMMEDIATE')
      const busy = (() => {
        try {
          other.exec('BEGIN IMMEDIATE')
        } catch (error) {
          return error
        }
      })()
      expect(isBusyError(busy)).toBe(true)
      holder.exec('ROLLBACK')
      const syntax = (() => {
        try {
          other.exec('NOT SQL')
        } catch (error) {
          return error
        }
      })()
      expect(syntax).toBeInstanceOf(Error)
      expect(isBusyError(syntax)).toBe(false)
    } finally {
      holder.close()
      other.close()
    }
  })
})

import { afterAll } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describeConformance } from '../conformance.ts'
import { openSqliteStore } from './index.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-sqlite-conformance-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

let files = 0
describeConformance('sqlite', () => openSqliteStore(join(dir, `store-${++files}.db`)))
describeConformance('sqlite :memory:', () => openSqliteStore(':memory:'))

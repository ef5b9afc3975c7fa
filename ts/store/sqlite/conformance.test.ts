import { afterAll } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describeConformance } from '../conformance.case.ts'
import { describeScenarios } from '../dcb-scenarios.case.ts'
import { openSqliteStore, type SqliteStoreOptions } from './index.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-sqlite-conformance-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

let files = 0
const openFile = (options?: SqliteStoreOptions) => openSqliteStore(join(dir, `store-${++files}.db`), options)
const openMemory = (options?: SqliteStoreOptions) => openSqliteStore(':memory:', options)

describeConformance('sqlite', openFile, 'sqlite')
describeConformance('sqlite :memory:', openMemory, 'sqlite')
describeScenarios('sqlite', openFile)
describeScenarios('sqlite :memory:', openMemory)

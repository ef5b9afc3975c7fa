import { afterAll } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describeConformance } from '../conformance.ts'
import { describeScenarios } from '../dcb-scenarios.ts'
import { openSqliteStore } from './index.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-sqlite-conformance-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

let files = 0
const openFile = () => openSqliteStore(join(dir, `store-${++files}.db`))
const openMemory = () => openSqliteStore(':memory:')

describeConformance('sqlite', openFile)
describeConformance('sqlite :memory:', openMemory)
describeScenarios('sqlite', openFile)
describeScenarios('sqlite :memory:', openMemory)

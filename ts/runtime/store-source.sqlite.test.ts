import { afterAll } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openStore } from '../store/index.ts'
import { describeStoreSource, type Subs } from './store-source.case.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-runtime-sqlite-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

describeStoreSource('SQLite', () => openStore<Subs>(`sqlite:${join(dir, `store-${++files}.db`)}`))

import { afterAll } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openStore } from '../store/index.ts'
import type { EventStore } from '../store/types.ts'
import { describeStoreSource, type Subs } from './store-source.case.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-runtime-sqlite-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

// openStore is not generic yet on this branch (section 2.2 types it); the map is the test's claim.
describeStoreSource('SQLite', async () => (await openStore(`sqlite:${join(dir, `store-${++files}.db`)}`)) as unknown as EventStore<Subs>)

import { afterAll } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describeMultiprocess } from './multiprocess.case.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-projections-mp-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0

describeMultiprocess('sqlite', async () => `sqlite:${join(dir, `store-${++files}.db`)}`)

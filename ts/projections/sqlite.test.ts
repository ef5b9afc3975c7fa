import { afterAll } from 'bun:test'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openStore } from '../store/open.ts'
import { describeAggregate } from './aggregate.case.ts'
import { describeRunner } from './runner.case.ts'

const dir = mkdtempSync(join(tmpdir(), 'ringstate-projections-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
let files = 0
const open = () => openStore(`sqlite:${join(dir, `store-${++files}.db`)}`)

describeAggregate('sqlite', open)
describeRunner('sqlite', open)

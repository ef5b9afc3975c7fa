import { expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as errors from './errors.ts'

const readme = readFileSync(join(import.meta.dir, '..', 'README.md'), 'utf8')

test('the README has a section for every error code', () => {
  const missing = Object.values(errors.ErrorCode).filter((code) => !readme.includes(`\n### ${code}\n`))
  expect(missing).toEqual([])
})

test('every error class carries its stable code and its name', () => {
  const conflict = new errors.AppendConditionFailedError({ failIfEventsMatch: 'all', after: 3n }, 4n)
  expect({ code: conflict.code, name: conflict.name, conflict: conflict.conflict }).toEqual({
    code: 'APPEND_CONDITION_FAILED', name: 'AppendConditionFailedError', conflict: 4n,
  })
  expect(new errors.BufferFullError({ type: 'x' }).item).toEqual({ type: 'x' })
  expect(new errors.StoreClosedError().code).toBe('STORE_CLOSED')
  expect(new errors.InvalidEventError('bad').code).toBe('INVALID_EVENT')
})

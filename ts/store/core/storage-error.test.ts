import { describe, expect, test } from 'bun:test'
import { AbortedError } from '../../errors.ts'
import { toStorageError } from './storage-error.ts'

describe('toStorageError', () => {
  test("keeps the driver's code and message and drops its query and parameters", () => {
    const driver = Object.assign(new Error('value too long for type character varying(5)'), {
      code: '22001',
      query: 'SELECT ringstate_append_batch($1, $2)',
      parameters: ['{"card":"4111 1111 1111 1111"}'],
      args: ['secret'],
    })
    const error = toStorageError('postgres', 'append', driver)
    expect(error).toMatchObject({ code: 'STORAGE_ERROR', message: 'postgres append failed: value too long for type character varying(5)' })
    const cause = error.cause as Record<string, unknown>
    expect(cause.message).toBe('value too long for type character varying(5)')
    expect(cause.code).toBe('22001')
    expect(Object.keys(cause)).not.toContain('parameters')
    expect(JSON.stringify({ ...cause, stack: cause.stack })).not.toContain('4111')
    expect(String(cause.stack)).not.toContain('ringstate_append_batch')
  })

  test('a ringstate error passes through unchanged', () => {
    const aborted = new AbortedError()
    expect(toStorageError('sqlite', 'read', aborted)).toBe(aborted)
  })
})

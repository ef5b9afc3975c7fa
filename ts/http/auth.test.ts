/** Tokens: the token file format, the configuration checks, and how problems map to statuses. */
import { describe, expect, test } from 'bun:test'
import { ErrorCode } from '../errors.ts'
import { hashToken, parseTokenFile, TokenRegistry } from './auth.ts'
import { statusOf } from './problem.ts'

const digest = hashToken('a-token-of-twenty-chars')

describe('token file', () => {
  test('parses name:sha256:scopes lines, skipping blanks and comments', () => {
    const text = `# ops team\n\nops:${digest}:read,admin\r\nci:${digest.toUpperCase()}:append , metrics\n`
    expect(parseTokenFile(text)).toEqual([
      { name: 'ops', sha256: digest, scopes: ['read', 'admin'] },
      { name: 'ci', sha256: digest, scopes: ['append', 'metrics'] },
    ])
  })

  test('names the bad line without echoing its content', () => {
    const secret = 'plaintext-secret-value'
    for (const [text, message] of [
      [`ops:${secret}`, /line 1: expected name:sha256:scopes/],
      [`\nops:${secret}:read`, /entry 1 \(ops\): sha256 must be 64 hex digits/],
      [`ops:${digest}:read,root`, /unknown scope/],
      [`ops:${digest}:`, /needs at least one scope/],
      [`ops:${digest}:read\nops:${digest}:read`, /used twice/],
      [`bad name:${digest}:read`, /name must be/],
    ] as const) {
      let error: { code?: string; message: string } | undefined
      try {
        parseTokenFile(text)
      } catch (thrown) {
        error = thrown as { code?: string; message: string }
      }
      expect(error?.code).toBe('INVALID_OPTIONS')
      expect(error?.message).toMatch(message)
      expect(error?.message).not.toContain(secret)
    }
  })
})

describe('token registry', () => {
  test('identifies a token by its digest or its plain form, and nothing else', () => {
    const registry = new TokenRegistry([
      { name: 'hashed', sha256: digest, scopes: ['read'] },
      { name: 'plain', token: 'another-token-of-twenty', scopes: ['append'] },
    ])
    expect(registry.open).toBe(false)
    expect(registry.identify('a-token-of-twenty-chars')?.name).toBe('hashed')
    expect(registry.identify('another-token-of-twenty')?.name).toBe('plain')
    expect(registry.identify('a-token-of-twenty-char')).toBeUndefined()
    expect(registry.identify('')).toBeUndefined()
  })

  test('refuses short plain tokens, both forms at once, and unknown scopes', () => {
    expect(() => new TokenRegistry([{ name: 'x', token: 'short', scopes: ['read'] }])).toThrow(/at least 16/)
    expect(() => new TokenRegistry([{ name: 'x', token: 'a-token-of-twenty-chars', sha256: digest, scopes: ['read'] } as never])).toThrow(
      /exactly one of token and sha256/,
    )
    expect(() => new TokenRegistry([{ name: 'x', sha256: digest, scopes: ['write' as never] }])).toThrow(/unknown scope/)
  })
})

test('every error code maps to the status DESIGN.md section 8 gives it', () => {
  const expected: Record<string, number> = {
    INVALID_EVENT: 400,
    INVALID_QUERY: 400,
    INVALID_CONDITION: 400,
    INVALID_OPTIONS: 400,
    UNAUTHORIZED: 401,
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    APPEND_CONDITION_FAILED: 409,
    PAYLOAD_TOO_LARGE: 413,
    OVERLOADED: 429,
    STORE_CLOSED: 503,
    STORAGE_ERROR: 503,
    WAIT_TIMEOUT: 504,
    INTERNAL: 500,
    COMMAND_FAILED: 500,
  }
  for (const [code, status] of Object.entries(expected)) expect({ code, status: statusOf(code) }).toEqual({ code, status })
  expect(statusOf(ErrorCode.APPEND_CONDITION_FAILED, true)).toBe(412)
})

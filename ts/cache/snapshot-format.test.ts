import { expect, test } from 'bun:test'
import { ErrorCode } from '../errors.ts'
import { Compression, decodeSnapshot, defaultCompression, encodeSnapshot } from './snapshot-format.ts'

const raw = new TextEncoder().encode('{"a":1}'.repeat(500))
const corrupt = expect.objectContaining({ code: ErrorCode.SNAPSHOT_CORRUPT })

test('every compression round-trips and records itself in the header', () => {
  for (const compression of [Compression.none, Compression.gzip, defaultCompression]) {
    const blob = encodeSnapshot(raw, compression)
    expect(blob[5]).toBe(compression)
    expect(decodeSnapshot(blob)).toEqual(raw)
  }
  expect(encodeSnapshot(raw, Compression.gzip).length).toBeLessThan(raw.length / 10)
})

test('a damaged compressed body, header or length is SNAPSHOT_CORRUPT', () => {
  for (const compression of [Compression.gzip, defaultCompression]) {
    const blob = encodeSnapshot(raw, compression)
    const flipped = blob.slice()
    flipped[flipped.length - 6]! ^= 0x40
    expect(() => decodeSnapshot(flipped)).toThrow(corrupt)
  }
  const blob = encodeSnapshot(raw, Compression.none)
  const wrongLength = blob.slice()
  wrongLength[8]! ^= 1
  expect(() => decodeSnapshot(wrongLength)).toThrow(corrupt)
  const unknown = blob.slice()
  unknown[5] = 9
  expect(() => decodeSnapshot(unknown)).toThrow(corrupt)
  expect(() => decodeSnapshot(blob.subarray(0, 10))).toThrow(corrupt)
})

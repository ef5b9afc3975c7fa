/**
 * The framing of a state cache snapshot as stored in the snapshots table: a small header that
 * records how the HAMT bytes (crates/hamt format) were compressed, then the compressed bytes.
 *
 * ```text
 * offset 0   4 bytes  "RSSC"
 * offset 4   1 byte   format version (1)
 * offset 5   1 byte   compression: 0 none, 1 gzip, 2 zstd
 * offset 6   2 bytes  reserved, zero
 * offset 8   8 bytes  uncompressed length, u64 little-endian
 * offset 16  the compressed HAMT bytes
 * ```
 * Both compressions carry a checksum of the content (the gzip CRC-32, the zstd frame checksum),
 * so a damaged snapshot is rejected rather than restored with a wrong state.
 * zstd is used where `node:zlib` has it (Bun, Deno, Node >= 22.15), gzip elsewhere. A runtime
 * without zstd cannot read a zstd snapshot and says so (SNAPSHOT_CORRUPT); the cache then rebuilds
 * from the log if the caller chooses to.
 *
 * @module
 */
import zlib from 'node:zlib'
import { SnapshotCorruptError } from '../errors.ts'

const MAGIC = [0x52, 0x53, 0x53, 0x43] // "RSSC"
const VERSION = 1
const HEADER = 16

/** Compression ids recorded in the header. */
export const Compression = { none: 0, gzip: 1, zstd: 2 } as const
export type Compression = (typeof Compression)[keyof typeof Compression]

type ZstdZlib = {
  zstdCompressSync?: (data: Uint8Array, options?: unknown) => Uint8Array
  zstdDecompressSync?: (data: Uint8Array) => Uint8Array
}
const zstd = zlib as unknown as ZstdZlib

/** `ZSTD_c_checksumFlag`, from node:zlib when it has zstd. */
const zstdChecksumFlag = (zlib.constants as Record<string, number>).ZSTD_c_checksumFlag ?? 201

/** The compression this runtime writes: zstd when available, gzip otherwise. */
export const defaultCompression: Compression = typeof zstd.zstdCompressSync === 'function' ? Compression.zstd : Compression.gzip

/** Frames and compresses HAMT bytes. */
export function encodeSnapshot(raw: Uint8Array, compression: Compression = defaultCompression): Uint8Array {
  let body: Uint8Array
  // The zstd frame checksum (gzip always has a CRC) is what catches a flipped bit in a value.
  if (compression === Compression.zstd) body = zstd.zstdCompressSync!(raw, { params: { [zstdChecksumFlag]: 1 } })
  else if (compression === Compression.gzip) body = zlib.gzipSync(raw, { level: 1 })
  else body = raw
  const out = new Uint8Array(HEADER + body.length)
  out.set(MAGIC, 0)
  out[4] = VERSION
  out[5] = compression
  new DataView(out.buffer).setBigUint64(8, BigInt(raw.length), true)
  out.set(body, HEADER)
  return out
}

/** Checks the frame and decompresses; every failure is SNAPSHOT_CORRUPT. */
export function decodeSnapshot(blob: Uint8Array): Uint8Array {
  if (blob.length < HEADER || !MAGIC.every((b, i) => blob[i] === b)) {
    throw new SnapshotCorruptError('not a ringstate state cache snapshot (bad magic or too short)')
  }
  if (blob[4] !== VERSION) throw new SnapshotCorruptError(`unsupported snapshot version ${blob[4]}`)
  if (blob[6] !== 0 || blob[7] !== 0) throw new SnapshotCorruptError('reserved snapshot header bytes are not zero')
  const length = new DataView(blob.buffer, blob.byteOffset, blob.byteLength).getBigUint64(8, true)
  const body = blob.subarray(HEADER)
  let raw: Uint8Array
  try {
    switch (blob[5]) {
      case Compression.none:
        raw = body
        break
      case Compression.gzip:
        raw = zlib.gunzipSync(body)
        break
      case Compression.zstd:
        if (typeof zstd.zstdDecompressSync !== 'function') {
          throw new SnapshotCorruptError('the snapshot is zstd-compressed and this runtime has no zstd in node:zlib')
        }
        raw = zstd.zstdDecompressSync(body)
        break
      default:
        throw new SnapshotCorruptError(`unknown snapshot compression ${blob[5]}`)
    }
  } catch (cause) {
    if (cause instanceof SnapshotCorruptError) throw cause
    throw new SnapshotCorruptError('the snapshot could not be decompressed', { cause })
  }
  if (BigInt(raw.length) !== length) {
    throw new SnapshotCorruptError(`the snapshot decompressed to ${raw.length} bytes, not the ${length} its header records`)
  }
  return raw
}

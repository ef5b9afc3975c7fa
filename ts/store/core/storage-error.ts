/**
 * Database failures as STORAGE_ERROR, the same way on every backend.
 */
import { RingstateError, StorageError } from '../../errors.ts'

/** The part of a driver error a caller may see: its code and message. */
export interface StorageCause extends Error {
  code?: string
}

/**
 * A driver error as a StorageError whose `cause` keeps only the driver's `code` and `message`:
 * postgres.js attaches the query text and `parameters` to its errors, and in a group commit those
 * hold other callers' payloads. A RingstateError passes through unchanged.
 */
export function toStorageError(backend: string, operation: string, error: unknown): RingstateError {
  if (error instanceof RingstateError) return error
  const message = typeof (error as { message?: unknown })?.message === 'string' ? (error as Error).message : String(error)
  const code = (error as { code?: unknown })?.code
  const cause: StorageCause = new Error(message)
  cause.name = typeof (error as { name?: unknown })?.name === 'string' ? (error as Error).name : 'Error'
  if (typeof code === 'string') cause.code = code
  // The stack would repeat the message; the store's own stack says where the call came from.
  cause.stack = `${cause.name}: ${message}`
  return new StorageError(`${backend} ${operation} failed: ${message}`, { cause })
}

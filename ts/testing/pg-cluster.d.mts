/** Types for ./pg-cluster.mjs (plain JavaScript so Node scripts can load it). */
export interface StartedCluster {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` (trust auth). */
  url: string
  port: number
  /** The temp directory holding the data directory, the log and the unix socket. */
  dir: string
  /** `pg_ctl stop -m immediate`, then remove `dir`. Safe to call twice. */
  stop(): Promise<void>
  /** The same, synchronously (for `process.on('exit')`). */
  stopSync(): void
  /** `pg_ctl stop -m immediate` (as a power cut would), keeping the data directory. */
  crash(): Promise<void>
  /** Start the crashed server again with the same settings, on the same port (crash recovery runs first). */
  restart(): Promise<void>
}
export function findBinDir(): string | undefined
export function startCluster(options?: { durable?: boolean }): Promise<StartedCluster>

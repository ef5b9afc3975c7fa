/**
 * bun:test preload for PostgreSQL tests (`[test] preload = ["./ts/testing/preload.ts"]`).
 *
 * It deliberately starts nothing. `DATABASE_URL`, when the environment sets it, is used as is;
 * when it is unset, the first test that calls `freshDatabase()` (or `postgresUrl()`) starts a
 * throwaway cluster, writes its URL to `process.env.DATABASE_URL` for child processes, and stops it
 * when the process exits. A run that never touches PostgreSQL therefore never starts a cluster.
 * Loading the harness here only makes sure every test file of the process shares that one cluster.
 */
import './postgres.ts'

/**
 * The event store (DESIGN.md section 2): the DCB contract, `openStore`, the in-memory backend,
 * decision models (`project`), the command executor (`execute`) and the matching rule.
 * The SQLite and PostgreSQL backends load through `openStore` on demand.
 */
export type * from './types.ts'
export { defaultStoreOptions } from './types.ts'
export { openStore, defaultStoreUrl, type OpenStoreOptions } from './open.ts'
export { MemoryStore } from './memory/index.ts'
export { project } from './project.ts'
export {
  execute,
  defaultExecuteOptions,
  type CommandContext,
  type CommandDecision,
  type CommandHandler,
  type ExecuteOptions,
} from './execute.ts'
export { matchesQuery, unionQueries } from './match.ts'

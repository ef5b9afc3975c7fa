export { openPostgresStore, PostgresStore, type PostgresStoreOptions } from './store.ts'
export { migrate, SCHEMA_VERSION } from './schema.ts'

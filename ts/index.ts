/**
 * ringstate's core: the DCB event store (open, append, query, project, execute), its query
 * helpers, aggregates and live projections, and every error class with its stable code. The bus,
 * the cache, the runtime, HTTP and
 * the native addon are subpath exports (`ringstate/bus`, `ringstate/cache`, ...).
 */
export * from './store/index.ts'
export * from './errors.ts'
export * from './projections/index.ts'

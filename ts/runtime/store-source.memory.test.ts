import { openStore } from '../store/index.ts'
import type { EventStore } from '../store/types.ts'
import { describeStoreSource, type Subs } from './store-source.case.ts'

// openStore is not generic yet on this branch (section 2.2 types it); the map is the test's claim.
describeStoreSource('memory', async () => (await openStore('memory:')) as unknown as EventStore<Subs>)

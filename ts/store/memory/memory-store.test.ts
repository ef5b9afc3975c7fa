import { describeConformance } from '../conformance.ts'
import { MemoryStore } from './memory-store.ts'

describeConformance('memory', async () => new MemoryStore())

import { describeScenarios } from './dcb-scenarios.ts'
import { MemoryStore } from './memory/index.ts'

describeScenarios('memory', async () => new MemoryStore())

import { describeScenarios } from './dcb-scenarios.case.ts'
import { MemoryStore } from './memory/index.ts'

describeScenarios('memory', async () => new MemoryStore())

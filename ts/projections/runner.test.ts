import { MemoryStore } from '../store/memory/index.ts'
import { describeRunner } from './runner.case.ts'

describeRunner('memory', async () => new MemoryStore())

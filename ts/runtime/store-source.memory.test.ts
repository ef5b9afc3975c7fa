import { openStore } from '../store/index.ts'
import { describeStoreSource, type Subs } from './store-source.case.ts'

describeStoreSource('memory', () => openStore<Subs>('memory:'))

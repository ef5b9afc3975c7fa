export { EventBus } from './event-bus.ts'
export type { BusEvent, BusMetrics, EventBusOptions, Handler, HandlerContext, Overrun } from './event-bus.ts'
export { SharedRing } from './shared-ring.ts'
export type { SharedRingHandle, SharedRingMetrics, SharedRingOptions } from './shared-ring.ts'

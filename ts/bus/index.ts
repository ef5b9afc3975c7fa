export { EventBus } from './event-bus.ts'
export type { BusEvent, BusMetrics, EventBusOptions, Handler, HandlerContext, Overrun } from './event-bus.ts'

import * as Metric from "effect/Metric"
import * as MetricBoundaries from "effect/MetricBoundaries"
import * as MetricKey from "effect/MetricKey"
import type * as PoolEvent from "../PoolEvent.js"

/**
 * The metric names, after OpenTelemetry's `db.client.connection.*` semantic conventions. Times are in seconds.
 *
 * @internal
 */
export const names = {
  count: "db.client.connection.count",
  idleMax: "db.client.connection.idle.max",
  idleMin: "db.client.connection.idle.min",
  max: "db.client.connection.max",
  pendingRequests: "db.client.connection.pending_requests",
  timeouts: "db.client.connection.timeouts",
  createTime: "db.client.connection.create_time",
  waitTime: "db.client.connection.wait_time",
  useTime: "db.client.connection.use_time",
  closes: "db.client.connection.closes",
  connectFailures: "db.client.connection.connect_failures"
} as const

/** @internal */
export const poolNameAttribute = "db.client.connection.pool.name"

const boundaries = MetricBoundaries.exponential({ start: 0.0001, factor: 2, count: 20 })

/**
 * One pool's metrics. Each key is tagged with the pool name up front, so an update goes straight to its cached hook
 * (tagging at update time would allocate and look up the registry on every call).
 *
 * @internal
 */
export interface PoolMetrics {
  readonly gauges: (idle: number, used: number, pending: number) => void
  readonly limits: (size: number, max: number, min: number) => void
  readonly waitTime: (millis: number) => void
  readonly useTime: (millis: number) => void
  readonly createTime: (millis: number) => void
  readonly timedOut: () => void
  readonly connectFailed: () => void
  readonly closed: (reason: PoolEvent.CloseReason) => void
}

/**
 * The pool's `labels` (Spanner's session labels) are attributes of every metric too, next to the pool name; a label
 * named like one of ours (`db.client.connection.pool.name`, `db.client.connection.state`, `reason`) is left out.
 *
 * @internal
 */
export const make = (pool: string, labels: Readonly<Record<string, string>> = {}): PoolMetrics => {
  const own = new Set([poolNameAttribute, "db.client.connection.state", "reason"])
  const extra = Object.entries(labels).filter(([key]) => !own.has(key))
  const tag = <K extends MetricKey.MetricKey.Untyped>(key: K): K => {
    let tagged = MetricKey.tagged(key, poolNameAttribute, pool) as unknown as K
    for (const [name, value] of extra) tagged = MetricKey.tagged(tagged, name, value) as unknown as K
    return tagged
  }
  const gauge = (name: string, description: string, state?: string) => {
    let key = tag(MetricKey.gauge(name, { description }))
    if (state !== undefined) key = MetricKey.tagged(key, "db.client.connection.state", state) as typeof key
    return Metric.fromMetricKey(key)
  }
  // monotonic, so exporters see counters (Prometheus: `*_total`), not gauges
  const counterKey = (name: string, description: string) =>
    tag(MetricKey.counter(name, { description, incremental: true }))
  const counter = (name: string, description: string) => Metric.fromMetricKey(counterKey(name, description))
  const histogram = (name: string, description: string) =>
    Metric.fromMetricKey(tag(MetricKey.histogram(name, boundaries, description)))

  const idle = gauge(names.count, "Connections by state", "idle")
  const used = gauge(names.count, "Connections by state", "used")
  const pending = gauge(names.pendingRequests, "Checkouts waiting for a connection")
  const idleMax = gauge(names.idleMax, "The most idle connections allowed")
  const idleMin = gauge(names.idleMin, "The fewest idle connections kept")
  const max = gauge(names.max, "The most open connections allowed")
  const timeouts = counter(names.timeouts, "Checkouts that timed out waiting")
  const connectFailures = counter(names.connectFailures, "Connect attempts that failed")
  const createTime = histogram(names.createTime, "Time to open a connection, in seconds")
  const waitTime = histogram(names.waitTime, "Time a checkout waited, in seconds")
  const useTime = histogram(names.useTime, "Time a connection was lent, in seconds")
  const closeCounters = new Map<string, Metric.Metric.Counter<number>>()
  const none: ReadonlyArray<never> = []
  let lastIdle = -1
  let lastUsed = -1
  let lastPending = -1
  return {
    gauges: (i, u, p) => {
      if (i !== lastIdle) idle.unsafeUpdate(lastIdle = i, none)
      if (u !== lastUsed) used.unsafeUpdate(lastUsed = u, none)
      if (p !== lastPending) pending.unsafeUpdate(lastPending = p, none)
    },
    limits: (size, maxOpen, min) => {
      idleMax.unsafeUpdate(size, none)
      idleMin.unsafeUpdate(min, none)
      max.unsafeUpdate(maxOpen === Infinity ? Number.MAX_SAFE_INTEGER : maxOpen, none)
    },
    waitTime: (millis) => waitTime.unsafeUpdate(millis / 1000, none),
    useTime: (millis) => useTime.unsafeUpdate(millis / 1000, none),
    createTime: (millis) => createTime.unsafeUpdate(millis / 1000, none),
    timedOut: () => timeouts.unsafeUpdate(1, none),
    connectFailed: () => connectFailures.unsafeUpdate(1, none),
    closed: (reason) => {
      let c = closeCounters.get(reason)
      if (c === undefined) {
        c = Metric.fromMetricKey(
          MetricKey.tagged(counterKey(names.closes, "Connections closed, by reason"), "reason", reason)
        )
        closeCounters.set(reason, c)
      }
      c.unsafeUpdate(1, none)
    }
  }
}

/**
 * The pool's metrics exported to Prometheus through `@effect/opentelemetry`: the `NodeSdk` layer with
 * `@opentelemetry/exporter-prometheus`'s `PrometheusExporter` as its metric reader, which serves the text format on
 * `http://127.0.0.1:<port>/metrics`. A pool over the Memory database does some work (a connect failure, a checkout
 * timeout and an overflow close included, so that every metric the pool has appears), then the program serves until
 * it is stopped. Run it with `npx tsx examples/operating/metrics-prometheus.ts [port]` (9464 by default) and open the
 * URL it prints.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { NodeRuntime } from "@effect/platform-node"
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus"
import { Console, Effect } from "effect"
import * as Memory from "../../src/Driver/Memory.js"
import * as Pool from "../../src/Pool.js"

/**
 * The exporter starts its HTTP server as it is built: this waits until the server listens (or fails to), so that a
 * port already taken fails the program at start instead of being logged and forgotten.
 */
const prometheusExporter = (port: number) =>
  Effect.async<PrometheusExporter, Error>((resume) => {
    const exporter: PrometheusExporter = new PrometheusExporter(
      { host: "127.0.0.1", port },
      (error) => resume(error === undefined ? Effect.succeed(exporter) : Effect.fail(error))
    )
  })

/** The OpenTelemetry SDK with the Prometheus exporter as its metric reader; shutting the layer down stops the server. */
export const MetricsLive = (port: number) =>
  NodeSdk.layer(Effect.map(prometheusExporter(port), (exporter) => ({
    resource: { serviceName: "orders-api" },
    metricReader: exporter
  })))

/** Some work through a pool named "orders", which stays open in the caller's scope so that its gauges stay current. */
export const workload = Effect.gen(function*() {
  const db = yield* Memory.make()
  const pool = yield* Pool.make({ driver: db.driver, name: "orders", size: 2, maxOverflow: 1, timeout: "2 seconds" })

  // three borrowers at once: two connections and one overflow connection, closed when it comes back to a full pool
  yield* Effect.forEach(
    [1, 2, 3],
    (n) => Pool.use(pool, (c) => Effect.zipRight(Effect.sleep("20 millis"), db.driver.query(c, `SELECT ${n}`))),
    { concurrency: "unbounded" }
  )
  // a fourth borrower while three hold every connection: it waits, then times out
  yield* Effect.forEach(
    [1, 2, 3, 4],
    (n) =>
      Effect.either(Pool.use(pool, () => n < 4 ? Effect.sleep("300 millis") : Effect.void, { timeout: "50 millis" })),
    { concurrency: "unbounded" }
  )
  // a connect that fails: every idle connection is closed, and the next checkout's connect is refused
  yield* Pool.dispose(pool)
  yield* db.failNextConnects(1)
  yield* Effect.either(Pool.use(pool, () => Effect.void))
  yield* Pool.use(pool, (c) => db.driver.query(c, "SELECT 1"))
  return pool
})

if (import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(process.argv[2] ?? 9464)
  Effect.gen(function*() {
    const pool = yield* workload
    yield* Console.log(`serving metrics on http://127.0.0.1:${port}/metrics`)
    yield* Console.log(yield* Pool.status(pool))
    return yield* Effect.never
  }).pipe(Effect.scoped, Effect.provide(MetricsLive(port)), NodeRuntime.runMain)
}

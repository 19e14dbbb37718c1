/**
 * Observability: the `Pool.events` stream, `Pool.listen` listeners (a checkout listener that rejects a connection),
 * the OpenTelemetry-named metrics, the `db.client.connection.create` and `.wait` spans, and `echo` logging.
 * Run it with `npx tsx examples/events.ts`.
 */
import { Chunk, Effect, Fiber, HashMap, Logger, LogLevel, Metric, Stream, Tracer } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"
import { ConnectionRejected } from "../src/PoolError.js"

/** Lets the pool's background fibers and the event subscriber run. */
const settle = Effect.repeatN(Effect.yieldNow(), 20)

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()
  const pool = yield* Pool.make({ driver: db.driver, name: "events-demo", size: 1, maxOverflow: 1, echo: true })

  // the stream: every lifecycle event from the moment it runs
  const collecting = yield* Effect.fork(Stream.runCollect(Stream.take(Pool.events(pool), 11)))
  yield* settle

  // a checkout listener may refuse a connection: here, one the server has silently dropped
  const seen: Array<string> = []
  yield* Pool.listen(pool, {
    checkout: ({ connection }) =>
      connection.alive ? Effect.void : Effect.fail(new ConnectionRejected({ reason: "connection is dead" })),
    close: ({ reason, record }) => Effect.sync(() => seen.push(`closed #${record.id} (${reason})`))
  })

  yield* Pool.use(pool, () => Effect.void)
  yield* db.kill(1, { notify: false })
  const servedBy = yield* Pool.use(pool, (connection) => Effect.succeed(connection.id))

  const events = Chunk.toReadonlyArray(yield* Fiber.join(collecting)).map((event) =>
    "record" in event ? `${event._tag} #${event.record.id}` : event._tag
  )

  // metrics are tagged with db.client.connection.pool.name
  const metrics = (yield* Metric.snapshot)
    .filter(({ metricKey }) =>
      metricKey.tags.some((tag) => tag.key === "db.client.connection.pool.name" && tag.value === "events-demo")
    )
    .map(({ metricKey }) =>
      [
        metricKey.name,
        ...metricKey.tags.filter((tag) => tag.key !== "db.client.connection.pool.name").map((t) =>
          `${t.key}=${t.value}`
        )
      ].join(" ")
    )
    .sort()

  return { servedBy, events, seen, metrics }
})

/** Wraps the current tracer to record the names of the spans started. */
const recordSpans = (names: Array<string>) =>
  Effect.map(Effect.tracer, (tracer) =>
    Tracer.make({
      span: (name, ...rest) => {
        names.push(name)
        return tracer.span(name, ...rest)
      },
      context: (f, fiber) => tracer.context(f, fiber)
    }))

/** Runs the program with a tracer and a logger that collect what the pool reports (`echo: true` logs at info). */
export const observed = Effect.gen(function*() {
  const spans: Array<string> = []
  const logs: Array<string> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    const connection = HashMap.get(annotations, "connection")
    logs.push(`${logLevel.label} ${String(message)}${connection._tag === "Some" ? ` #${connection.value}` : ""}`)
  })
  const tracer = yield* recordSpans(spans)
  const result = yield* program.pipe(
    Effect.scoped,
    Effect.withTracer(tracer),
    Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
    Logger.withMinimumLogLevel(LogLevel.Info)
  )
  return { ...result, spans, logs }
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(observed).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}

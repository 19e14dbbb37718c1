/**
 * A simulated database, for your tests and ours: configurable connect latency and failures (fail the next N, fail
 * with a probability, hang), per-connection liveness a test can kill, a "server restart" that kills every open
 * connection and refuses connects for a while, transaction state per connection, session settings, a log of what
 * was committed, and counters of opened and closed connections. Every timing goes through Effect's `Clock` and
 * randomness through Effect's `Random`, so it runs under `TestClock` and repeats under a seed.
 *
 * It also exports `FastCheck` arbitraries of fault plans, so a property test can draw random faults in a few lines.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as FastCheck from "effect/FastCheck"
import * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import type { Driver, Row } from "../Driver.js"
import * as internal from "../internal/memory.js"

/**
 * What a `Memory` connection lets a test see.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryConnection {
  /** Unique within its database, from 1. */
  readonly id: number
  /** The pool's name, as a PostgreSQL server would see `application_name`. */
  readonly applicationName: string
  /** `false` once killed (by `kill`, `restart`) or closed. */
  readonly alive: boolean
  /** `true` once closed by its pool. */
  readonly closed: boolean
  /** Whether a transaction is open (a `BEGIN` without `COMMIT` / `ROLLBACK`). */
  readonly inTransaction: boolean
  /** Session settings made with `SET name = value`, kept until the connection closes. */
  readonly settings: ReadonlyMap<string, string>
  /** Statements run on this connection, in order. */
  readonly statements: ReadonlyArray<string>
  /** The same statements with the parameters they were given (`[]` when none), in order. */
  readonly log: ReadonlyArray<Statement>
}

/**
 * One statement as the simulated database received it: its text, its parameters, and the connection's id.
 *
 * Placeholders are PostgreSQL's `$1`, `$2`, … (a number may repeat) or SQLite's `?`; a statement that names more
 * parameters than it was given, or leaves some unused, fails with `QueryFailed` as the real server would.
 *
 * @since 0.5.0
 * @category models
 */
export interface Statement {
  readonly sql: string
  readonly params: ReadonlyArray<unknown>
  readonly connection: number
}

/**
 * The errors of the simulated database. `Disconnected` and `ConnectRefused` are disconnects for `isDisconnect`.
 *
 * @since 0.1.0
 * @category errors
 */
export class MemoryError extends Schema.TaggedError<MemoryError>("effect-reservoir/MemoryError")("MemoryError", {
  reason: Schema.Literal("ConnectRefused", "ConnectFailed", "Disconnected", "QueryFailed"),
  message: Schema.String
}) {}

/**
 * How one connect attempt goes: at once (`ok`), failing (`fail`), after the plan's `slowMillis` (`slow`), or never
 * (`never`: it hangs until interrupted).
 *
 * @since 0.1.0
 * @category models
 */
export type Gate = "ok" | "fail" | "slow" | "never"

/**
 * How one statement goes: normally, failing with `QueryFailed`, or losing the connection (`disconnect`).
 *
 * @since 0.1.0
 * @category models
 */
export type QueryGate = "ok" | "fail" | "disconnect"

/**
 * A plan of faults: the gates of the next connect attempts and statements, in order (after them, all go `ok`).
 *
 * @since 0.1.0
 * @category models
 */
export interface FaultPlan {
  readonly connects: ReadonlyArray<Gate>
  readonly queries: ReadonlyArray<QueryGate>
  readonly slowMillis: number
}

/**
 * Counters of the simulated database.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryStats {
  readonly connectAttempts: number
  readonly refused: number
  readonly opened: number
  readonly closed: number
  /** Open connections (opened and not closed), alive or not. */
  readonly open: number
  /** Closes of a connection that was already closed: always 0 for a correct pool. */
  readonly closedTwice: number
  /** Open connections with a transaction open (PostgreSQL's `idle in transaction`). */
  readonly inTransaction: number
  readonly queries: number
}

/**
 * A simulated database and its driver.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryDatabase {
  readonly driver: Driver<MemoryConnection, MemoryError>
  /** Counters. */
  readonly stats: Effect.Effect<MemoryStats>
  /** The open connections. */
  readonly connections: Effect.Effect<ReadonlyArray<MemoryConnection>>
  /** Statements committed (or run outside a transaction), in commit order, across all connections. */
  readonly committed: Effect.Effect<ReadonlyArray<string>>
  /** The same, with the parameters each statement was given: what a test asserts instead of inlining values. */
  readonly committedStatements: Effect.Effect<ReadonlyArray<Statement>>
  /** The next `n` connect attempts fail with `ConnectFailed`. */
  readonly failNextConnects: (n: number) => Effect.Effect<void>
  /** The next `n` connect attempts hang until interrupted. */
  readonly hangNextConnects: (n: number) => Effect.Effect<void>
  /** Every connect attempt fails with probability `p` (drawn from Effect's `Random`). */
  readonly setConnectFailureRate: (p: number) => Effect.Effect<void>
  /** Latency of connects and of statements. */
  readonly setLatency: (latency: {
    readonly connect?: Duration.DurationInput | undefined
    readonly query?: Duration.DurationInput | undefined
  }) => Effect.Effect<void>
  /** The next `n` statements fail with `QueryFailed`. */
  readonly failNextQueries: (n: number) => Effect.Effect<void>
  /**
   * Kills a connection: its next statement fails with `Disconnected`. With `notify` (the default) the pool is told
   * at once, as node-postgres's `error` event does for an idle client whose backend was terminated.
   */
  readonly kill: (
    connection: MemoryConnection | number,
    options?: { readonly notify?: boolean | undefined }
  ) => Effect.Effect<void>
  /** Kills every open connection and refuses connects for `downFor` (a server restart). */
  readonly restart: (
    downFor: Duration.DurationInput,
    options?: { readonly notify?: boolean | undefined }
  ) => Effect.Effect<void>
  /** Refuses every connect until `up` (the server is down); open connections are not touched. */
  readonly down: Effect.Effect<void>
  /** Accepts connects again. */
  readonly up: Effect.Effect<void>
  /** Applies a fault plan: the gates of the next connects and statements. */
  readonly applyPlan: (plan: FaultPlan) => Effect.Effect<void>
}

/**
 * Options of a simulated database.
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryOptions {
  readonly connectLatency?: Duration.DurationInput | undefined
  readonly queryLatency?: Duration.DurationInput | undefined
  /**
   * Answers statements with rows, for services whose queries read: called for every statement other than `BEGIN`,
   * `COMMIT`, `ROLLBACK`, `SET` and `SHOW`, with its text and parameters; the rows it returns are the statement's
   * result. `undefined` falls back to the built-in behaviour (`SELECT 1` gives one row, anything else none). A
   * statement answered here is still recorded (and committed with its transaction).
   */
  readonly respond?: ((statement: Statement) => ReadonlyArray<Row> | undefined) | undefined
}

/**
 * Creates a simulated database.
 *
 * @example
 * ```ts
 * import { Pool } from "effect-reservoir"
 * import * as Memory from "effect-reservoir/Driver/Memory"
 * import { Effect } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const db = yield* Memory.make({ connectLatency: "5 millis" })
 *   const pool = yield* Pool.make({ driver: db.driver, size: 2 })
 *   yield* db.failNextConnects(1)
 *   const first = yield* Effect.either(Pool.use(pool, () => Effect.void)) // fails: ConnectFailed
 *   return [first, yield* db.stats] as const
 * })
 * ```
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: (options?: MemoryOptions) => Effect.Effect<MemoryDatabase> = internal.make

/**
 * The database as a service, for tests that share one.
 *
 * @since 0.1.0
 * @category models
 */
export class Memory extends Context.Tag("effect-reservoir/Driver/Memory")<Memory, MemoryDatabase>() {}

/**
 * The simulated database's driver as a service, so a PoolLayer can name it as it names `Pg.PgDriver`:
 * `Pool.layer(Db, { driver: Memory.MemoryDriver })`.
 *
 * @since 0.5.0
 * @category models
 */
export class MemoryDriver extends Context.Tag("effect-reservoir/Driver/Memory/MemoryDriver")<
  MemoryDriver,
  Driver<MemoryConnection, MemoryError>
>() {}

/**
 * A layer of a fresh simulated database: the database as `Memory` (to inject faults and read what was committed)
 * and its driver as `MemoryDriver`.
 *
 * @example
 * ```ts
 * import { Context, Effect, Layer } from "effect"
 * import * as Memory from "effect-reservoir/Driver/Memory"
 * import * as Pool from "effect-reservoir/Pool"
 *
 * class Db extends Context.Tag("app/Db")<Db, Pool.Pool<Memory.MemoryConnection, Memory.MemoryError>>() {}
 *
 * const TestDb = Pool.layer(Db, { driver: Memory.MemoryDriver, size: 2 }).pipe(
 *   Layer.provideMerge(Memory.layer())
 * )
 *
 * const program = Effect.gen(function*() {
 *   const db = yield* Db
 *   yield* Pool.query(db, "INSERT INTO orders VALUES ($1, $2)", [1, "tea"])
 *   return yield* Effect.flatMap(Memory.Memory, (memory) => memory.committedStatements)
 * })
 * Effect.runPromise(program.pipe(Effect.provide(TestDb)))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: MemoryOptions): Layer.Layer<Memory | MemoryDriver> =>
  Layer.effectContext(
    Effect.map(make(options), (db) => Context.make(Memory, db).pipe(Context.add(MemoryDriver, db.driver)))
  )

/**
 * `FastCheck` arbitraries of faults.
 *
 * @example
 * ```ts
 * import * as Memory from "effect-reservoir/Driver/Memory"
 * import { Effect, FastCheck } from "effect"
 *
 * // in a test: it.effect.prop("...", [Memory.arbitraries.faultPlan()], ([plan]) => ...) with @effect/vitest
 * export const survivesFaults = FastCheck.asyncProperty(Memory.arbitraries.faultPlan(), (plan) =>
 *   Effect.runPromise(Effect.gen(function*() {
 *     const db = yield* Memory.make()
 *     yield* db.applyPlan(plan)
 *     // ... run the service against a pool of db.driver and check what it promises
 *   })))
 * ```
 *
 * @since 0.1.0
 * @category arbitraries
 */
export const arbitraries: {
  readonly gate: FastCheck.Arbitrary<Gate>
  readonly queryGate: FastCheck.Arbitrary<QueryGate>
  readonly faultPlan: (options?: {
    readonly maxConnects?: number | undefined
    readonly maxQueries?: number | undefined
    readonly maxSlowMillis?: number | undefined
  }) => FastCheck.Arbitrary<FaultPlan>
} = internal.arbitraries

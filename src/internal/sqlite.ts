import Database from "better-sqlite3"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as path from "node:path"
import { standalone } from "../ConnectionRecord.js"
import type { Driver } from "../Driver.js"
import type * as Sqlite from "../Driver/Sqlite.js"
import { SqliteDriver, SqliteError } from "../Driver/Sqlite.js"
import * as driverInternal from "./driver.js"
import { Lock } from "./lock.js"
import * as checks from "./policies/check.js"
import { decode } from "./policies/upkeep.js"

type Operation = SqliteError["operation"]

const stringField = (u: unknown, key: string): string | undefined =>
  Predicate.hasProperty(u, key) && typeof u[key] === "string" ? u[key] : undefined

const messageOf = (u: unknown): string => stringField(u, "message") ?? String(u)

const NOT_OPEN = /database connection is not open/i

const classify = (code: string | undefined, message: string): boolean =>
  NOT_OPEN.test(message) || (code !== undefined && code.startsWith("SQLITE_CANTOPEN"))

/** @internal */
export const isDisconnect = (error: unknown): boolean => {
  if (error instanceof SqliteError) return error.reason === "Disconnected" || classify(error.code, error.detail)
  if (!Predicate.isObject(error)) return false
  return classify(stringField(error, "code"), messageOf(error))
}

const wrap = (operation: Operation) => (cause: unknown): SqliteError => {
  if (cause instanceof SqliteError) return cause
  const code = stringField(cause, "code")
  const detail = messageOf(cause)
  const reason: SqliteError["reason"] = classify(code, detail) ?
    (operation === "connect" || operation === "check" ? "ConnectFailed" : "Disconnected") :
    operation === "connect" || operation === "check" ?
    "ConnectFailed" :
    code !== undefined && code.startsWith("SQLITE_BUSY") ?
    "Busy" :
    "QueryFailed"
  return new SqliteError({ reason, operation, detail, ...(code === undefined ? {} : { code }), cause })
}

const bindable = (value: unknown): unknown => {
  if (value === undefined) return null
  if (typeof value === "boolean") return value ? 1 : 0
  if (value instanceof Date) return value.toISOString()
  if (value instanceof Uint8Array && !Buffer.isBuffer(value)) {
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  }
  return value
}

const STATEMENT_CACHE = 64

/**
 * better-sqlite3 waits for a lock by blocking the JavaScript thread, so two connections of this process can never
 * wait for each other: the holder cannot run while the waiter sleeps. Writers of the same file therefore queue on
 * one in-process lock first (`Lock`, ./lock.ts: waiting on it lets the holder finish), held from the first write
 * (or `BEGIN`) until the connection is out of its transaction. SQLite's busy timeout is then left to other processes.
 */
const writeLocks = new Map<string, Lock>()

const writeLockOf = (filename: string): Lock | undefined => {
  if (filename === "" || filename === ":memory:") return undefined
  const key = path.resolve(filename)
  let lock = writeLocks.get(key)
  if (lock === undefined) {
    lock = new Lock(1)
    writeLocks.set(key, lock)
  }
  return lock
}

const TRANSACTION_START = /^\s*(BEGIN|SAVEPOINT)\b/i

class Connection implements Sqlite.SqliteConnection {
  private readonly statements = new Map<string, Database.Statement>()
  /** Whether this connection holds its file's in-process write lock. */
  holding = false

  constructor(
    readonly database: Database.Database,
    readonly filename: string,
    readonly writeLock: Lock | undefined,
    readonly lockTimeout: Duration.Duration
  ) {}

  /** Prepared statements are kept per connection, the least recently prepared dropped first. */
  prepare(sql: string): Database.Statement {
    const cached = this.statements.get(sql)
    if (cached !== undefined) return cached
    const statement = this.database.prepare(sql)
    if (this.statements.size >= STATEMENT_CACHE) {
      const oldest = this.statements.keys().next()
      if (oldest.done !== true) this.statements.delete(oldest.value)
    }
    this.statements.set(sql, statement)
    return statement
  }

  /** Waits for the write lock (within the busy timeout) unless this connection holds it already. */
  acquire(operation: Operation): Effect.Effect<void, SqliteError> {
    const lock = this.writeLock
    if (lock === undefined || this.holding) return Effect.void
    const busy = () =>
      new SqliteError({
        reason: "Busy",
        operation,
        code: "SQLITE_BUSY",
        detail: `another connection of this process kept ${this.filename} locked for more than ` +
          Duration.format(this.lockTimeout)
      })
    // Taking the lock and marking it held are one step, so a permit is never taken without `holding` (which would
    // leave the file locked for good). The wait is interruptible even inside an uninterruptible region (a
    // transaction's `BEGIN` runs in one), so the busy timeout can end it.
    return Effect.flatMap(Clock.currentTimeMillis, (start) => {
      const deadline = start + Duration.toMillis(this.lockTimeout)
      return lock.take(
        () => {
          this.holding = true
        },
        (wait) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            now >= deadline ?
              Effect.fail(busy()) :
              Effect.timeoutFail(wait, { duration: deadline - now, onTimeout: busy }))
      )
    })
  }

  /** Gives the write lock back once the connection is out of its transaction (or closed). */
  readonly releaseIfDone: Effect.Effect<void> = Effect.suspend(() => {
    if (!this.holding || (this.database.open && this.database.inTransaction)) return Effect.void
    this.holding = false
    return this.writeLock!.release
  })
}

const open = (options: Sqlite.SqliteOptions): Connection => {
  const busyTimeout = decode(options.busyTimeout ?? "5 seconds")
  const database = new Database(options.filename, {
    timeout: Math.max(0, Math.round(Duration.toMillis(busyTimeout))),
    readonly: options.readonly ?? false,
    fileMustExist: options.fileMustExist ?? false
  })
  try {
    if (!database.memory && options.readonly !== true) {
      database.pragma(`journal_mode = ${options.journalMode ?? "wal"}`)
    }
    for (const [name, value] of Object.entries(options.pragmas ?? {})) {
      database.pragma(`${name} = ${value}`)
    }
  } catch (error) {
    database.close()
    throw error
  }
  const writeLock = database.memory || options.readonly === true ? undefined : writeLockOf(options.filename)
  return new Connection(database, options.filename, writeLock, busyTimeout)
}

const connect = (options: Sqlite.SqliteOptions): Effect.Effect<Connection, SqliteError, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.try({ try: () => open(options), catch: wrap("connect") }),
    (connection) =>
      Effect.try(() => {
        if (connection.database.open) connection.database.close()
      }).pipe(
        Effect.catchAll((error) => Effect.logWarning(`closing SQLite database ${connection.filename} failed`, error)),
        Effect.ensuring(connection.releaseIfDone)
      )
  )

/**
 * How a statement's result is returned: its rows as objects, the driver's own result (`RunResult` for a statement
 * without rows), or its rows as arrays of values. `safeIntegers` reads integers as `bigint`.
 *
 * @internal
 */
export interface Mode {
  readonly result: "rows" | "raw" | "values"
  readonly safeIntegers: boolean
}

const rowsMode: Mode = { result: "rows", safeIntegers: false }

const execute = (
  statement: Database.Statement,
  params: ReadonlyArray<unknown> | undefined,
  mode: Mode
): ReadonlyArray<any> => {
  const values = params === undefined ? [] : params.map(bindable)
  if (!statement.reader) {
    const result = statement.run(...values)
    return mode.result === "raw" ? result as unknown as ReadonlyArray<any> : []
  }
  // a cached statement keeps its modes: set them both every time
  statement.safeIntegers(mode.safeIntegers)
  statement.raw(mode.result === "values")
  return statement.all(...values)
}

/** @internal */
export const run = (
  connection: Sqlite.SqliteConnection,
  sql: string,
  params: ReadonlyArray<unknown> | undefined,
  operation: Operation,
  mode: Mode = rowsMode
): Effect.Effect<ReadonlyArray<any>, SqliteError> =>
  Effect.suspend(() => {
    const self = connection as Connection
    let statement: Database.Statement
    try {
      statement = self.prepare(sql)
    } catch (error) {
      return Effect.fail(wrap(operation)(error))
    }
    const statementEffect = Effect.try({ try: () => execute(statement, params, mode), catch: wrap(operation) })
    if (self.writeLock === undefined) return statementEffect
    const writes = !statement.readonly || TRANSACTION_START.test(sql)
    if (!writes && !self.holding) return statementEffect
    return Effect.ensuring(
      writes ? Effect.zipRight(self.acquire(operation), statementEffect) : statementEffect,
      self.releaseIfDone
    )
  })

/**
 * A reading statement's rows, `batchSize` at a time, from better-sqlite3's iterator: the connection is held for the
 * stream's life (nothing else may run on it while the iterator is open), and the iterator is closed when the stream
 * ends, early or not. A statement that writes runs as `run` does and streams its rows (if any) the same way.
 *
 * @internal
 */
export const stream = (
  connection: Sqlite.SqliteConnection,
  sql: string,
  params: ReadonlyArray<unknown>,
  safeIntegers: boolean,
  batchSize = 128
): Stream.Stream<any, SqliteError> =>
  Stream.unwrapScoped(Effect.suspend(() => {
    const self = connection as Connection
    let statement: Database.Statement
    try {
      statement = self.prepare(sql)
    } catch (error) {
      return Effect.fail(wrap("query")(error))
    }
    // a statement that writes (`INSERT ... RETURNING` reads too) takes the file's write lock: it runs as `run` does
    if (!statement.reader || !statement.readonly) {
      return Effect.succeed(
        Stream.fromIterableEffect(run(connection, sql, params, "query", { result: "rows", safeIntegers }))
      )
    }
    return Effect.map(
      Effect.acquireRelease(
        Effect.try({
          try: () => {
            statement.safeIntegers(safeIntegers)
            statement.raw(false)
            return statement.iterate(...params.map(bindable)) as IterableIterator<unknown>
          },
          catch: wrap("query")
        }),
        (iterator) => Effect.sync(() => iterator.return?.())
      ),
      (iterator) =>
        Stream.repeatEffectChunkOption(Effect.suspend(() => {
          const batch: Array<unknown> = []
          try {
            for (let next = iterator.next(); next.done !== true; next = iterator.next()) {
              batch.push(next.value)
              if (batch.length >= batchSize) break
            }
          } catch (error) {
            return Effect.fail(Option.some(wrap("query")(error)))
          }
          return batch.length === 0 ? Effect.fail(Option.none()) : Effect.succeed(Chunk.unsafeFromArray(batch))
        }))
    )
  }))

/** Whether a transaction is open, as SQLite itself says; not known once the handle is closed. */
const inTransaction = (connection: Sqlite.SqliteConnection): boolean | undefined =>
  connection.database.open ? connection.database.inTransaction : undefined

/** What is wrong with the options (`Driver.problems`): a busy timeout that is negative or not a duration. */
const problemsOf = (options: Sqlite.SqliteOptions): ReadonlyArray<string> => {
  const problem = options.busyTimeout === undefined ?
    undefined :
    checks.duration("busyTimeout", options.busyTimeout, { infinite: false })
  return problem === undefined ? [] : [problem]
}

/** @internal */
export const driver = (options: Sqlite.SqliteOptions): Driver<Sqlite.SqliteConnection, SqliteError> => {
  const liveness = options.liveness ?? "SELECT 1"
  const begin = `BEGIN ${(options.beginMode ?? "immediate").toUpperCase()}`
  return driverInternal.make<Sqlite.SqliteConnection, SqliteError>({
    dialect: "sqlite",
    problems: problemsOf(options),
    connect: () => connect(options),
    query: (connection, sql, params) => run(connection, sql, params, "query"),
    ping: (connection) => Effect.asVoid(run(connection, liveness, undefined, "ping")),
    begin: (connection) => Effect.asVoid(run(connection, begin, undefined, "begin")),
    commit: (connection) => Effect.asVoid(run(connection, "COMMIT", undefined, "commit")),
    rollback: (connection) =>
      Effect.suspend(() =>
        inTransaction(connection) === false ?
          Effect.void :
          Effect.asVoid(run(connection, "ROLLBACK", undefined, "rollback"))
      ),
    isDisconnect,
    inTransaction
  })
}

/** @internal */
export const check = (options: Sqlite.SqliteOptions): Effect.Effect<void, SqliteError> =>
  Effect.suspend(() => {
    const self = driver(options)
    if (self.problems !== undefined && self.problems.length > 0) {
      return Effect.fail(
        new SqliteError({
          reason: "ConnectFailed",
          operation: "connect",
          detail: `bad options: ${self.problems.join("; ")}`
        })
      )
    }
    return Effect.scoped(
      Effect.flatMap(
        self.connect({ record: standalone("effect-reservoir"), poolName: "effect-reservoir", invalidate: () => {} }),
        (connection) => self.ping(connection)
      )
    )
  })

/** @internal */
export const defaultConfig: Config.Config.Wrap<Sqlite.SqliteOptions> = { filename: Config.string("SQLITE_FILENAME") }

const layers = driverInternal.makeLayers({ tag: () => SqliteDriver, driver, check, config: defaultConfig })

/** @internal */
export const layer: {
  (options: Sqlite.SqliteOptions): Layer.Layer<Sqlite.SqliteDriver, SqliteError>
  <I>(
    tag: Context.Tag<I, Driver<Sqlite.SqliteConnection, SqliteError>>,
    options: Sqlite.SqliteOptions
  ): Layer.Layer<I, SqliteError>
} = layers.layer

/** @internal */
export const layerConfig: {
  (
    config?: Config.Config.Wrap<Sqlite.SqliteOptions>
  ): Layer.Layer<Sqlite.SqliteDriver, SqliteError | ConfigError.ConfigError>
  <I>(
    tag: Context.Tag<I, Driver<Sqlite.SqliteConnection, SqliteError>>,
    config?: Config.Config.Wrap<Sqlite.SqliteOptions>
  ): Layer.Layer<I, SqliteError | ConfigError.ConfigError>
} = layers.layerConfig

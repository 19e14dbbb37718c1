/**
 * The `@effect/sql` behaviour suite of issue 13: one body of cases, run against every `SqlClient` layer — this
 * package's clients and Effect's own (`@effect/sql-pg`, `@effect/sql-sqlite-node`) on PostgreSQL and SQLite — so that
 * a program written for Effect's client is shown to run unchanged on ours, and every difference is a test named for
 * it.
 *
 * A test file describes one client (`ClientUnderTest`) and calls `suite(it, client)`. What a client cannot do is a
 * capability flag, and each flag switches a case to a test named for the difference that asserts the client's actual
 * behaviour (for example "@effect/sql-sqlite-node: sql.stream dies with executeStream not implemented"), so no case is
 * skipped silently. Cases that only mean something on one database (PostgreSQL's arrays, `updateValues`, cancelling a
 * statement on the server, a server restart) are in the dialect's own block.
 *
 * Tables are named from the client's `prefix` plus a counter, so clients sharing one database never meet.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import * as SqlResolver from "@effect/sql/SqlResolver"
import * as SqlSchema from "@effect/sql/SqlSchema"
import * as Statement from "@effect/sql/Statement"
import { assert, describe, type Vitest } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { gc } from "../utils/heap.js"

/** The statement compiler a client uses. */
export type Dialect = "pg" | "sqlite"

/** What a client can do; each `false` / `undefined` turns a case into a test named for the difference. */
export interface Capabilities {
  /**
   * `sql.stream` reads rows incrementally. `false` for `@effect/sql-sqlite-node`, whose connection's `executeStream`
   * is `Effect.dieMessage("executeStream not implemented")`.
   */
  readonly stream: boolean
  /**
   * The client's predicate for "this `SqlError` means the connection is lost". `undefined` when the client has none
   * (`@effect/sql-*`: a caller can only look at the driver error in `cause`).
   */
  readonly isDisconnect: ((error: SqlError) => boolean) | undefined
  /**
   * Every statement goes through one connection (`@effect/sql-sqlite-node`, and this package's SQLite client on
   * `:memory:`): a statement outside an open transaction waits until the transaction ends. `false`: it runs on another
   * connection at once and, isolated, does not see the transaction's uncommitted rows.
   */
  readonly oneConnection: boolean
}

/** What the PostgreSQL-only cases need: the server, a one-connection layer, and the client's pg capabilities. */
export interface PgCases<R> {
  /** The `application_name` the client's sessions carry (set in its layers), to find them in `pg_stat_activity`. */
  readonly applicationName: string
  /** One statement on a fresh admin session of the harness (`test/utils/postgres.ts`). */
  readonly query: (
    sql: string,
    params?: ReadonlyArray<unknown>
  ) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, unknown, R>
  /** Stops the server (`pg_ctl stop -m fast`: every backend is terminated) and starts it again on the same port. */
  readonly restart: Effect.Effect<void, unknown, R>
  /** The same client limited to one connection (`maxConnections: 1`), for the case of an exhausted pool. */
  readonly oneConnectionLayer: Layer.Layer<SqlClient.SqlClient, unknown, R>
  /**
   * A stream whose connection dies (the server restarts under it) fails with `SqlError`. `false` for
   * `@effect/sql-pg`: its stream reads through pg-cursor, whose read fails, but the stream's finalizer awaits
   * `cursor.close()`, which waits for a `readyForQuery` that a dead connection never sends, so the stream never ends.
   */
  readonly streamFailsOnDisconnect: boolean
  /**
   * Interrupting a statement cancels it on the server even when every connection of the pool is busy. `false` for
   * `@effect/sql-pg`: its cancel is a `SELECT pg_cancel_backend(pid)` through the same pg-pool, which has no free
   * client, so the interruption waits for the cancel's own 5-second timeout and the statement runs on.
   */
  readonly cancelsWithPoolExhausted: boolean
}

/** The migrations this suite runs: `MigratorOptions` without `schemaDirectory` (no schema dump). */
export type MigrateOptions = Omit<Migrator.MigratorOptions, "schemaDirectory">

/** One client under test. */
export interface ClientUnderTest<ROut, R> {
  /** The describe block's name, e.g. "@effect/sql-pg PgClient.layer". */
  readonly name: string
  /** Prefix of every table this run creates: unique per client when clients share a database. */
  readonly prefix: string
  /** Provides `SqlClient.SqlClient` (and whatever else the client's layer provides). */
  readonly layer: Layer.Layer<ROut | SqlClient.SqlClient, unknown, R>
  readonly dialect: Dialect
  readonly capabilities: Capabilities
  /**
   * The dialect's migrator, as a program would call it: `PgMigrator.run` / `SqliteMigrator.run`, for every client (this
   * package's layers provide Effect's `PgClient` / `SqliteClient` tags too). They also demand `FileSystem`, `Path`
   * and `CommandExecutor` in their context type, though only `schemaDirectory`'s schema dump reads them.
   */
  readonly migrate: (
    options: MigrateOptions
  ) => Effect.Effect<ReadonlyArray<readonly [id: number, name: string]>, unknown, ROut | SqlClient.SqlClient>
  /** Required when `dialect` is "pg". */
  readonly pg?: PgCases<R> | undefined
}

/** The heap after a full collection (or as it is, without `gc`). */
const heapUsed = (): number => {
  gc?.()
  return process.memoryUsage().heapUsed
}

const Person = Schema.Struct({ id: Schema.Number, name: Schema.String })
type Person = typeof Person.Type

const STREAM_ROWS = 100_000
/** Bytes of text per streamed row: 100,000 rows of it (about 100 MB as JavaScript strings) cannot sit in 64 MB. */
const STREAM_PAYLOAD = 1_000
const STREAM_HEAP_BOUND = 64 * 1024 * 1024

/** A statement counter: every statement the effect runs through the `sql` template is recorded (compiled text). */
const countingStatements = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.suspend(() => {
    const statements: Array<string> = []
    return effect.pipe(
      Statement.withTransformer((self) =>
        Effect.sync(() => {
          statements.push(self.compile()[0])
          return self
        })
      ),
      Effect.map((result) => [result, statements] as const)
    )
  })

/** Polls `condition` (real time: the suite runs without test services) until it holds; fails after `millis`. */
const eventually = <E, R>(condition: Effect.Effect<boolean, E, R>, message: string, millis = 5_000) => {
  const poll: Effect.Effect<void, E, R> = Effect.flatMap(
    condition,
    (ok) => ok ? Effect.void : Effect.zipRight(Effect.sleep("20 millis"), poll)
  )
  return poll.pipe(
    Effect.timeoutFail({ duration: millis, onTimeout: () => new Error(`${message}: not within ${millis} ms`) })
  )
}

/** Runs the suite against one client, in a describe block named after it. */
export const suite = <ROut, R>(
  it: Vitest.MethodsNonLive<R, true>,
  client: ClientUnderTest<ROut, R>
): void => {
  const { capabilities, dialect, prefix } = client
  let tables = 0
  const tableName = (base: string) => `${prefix}_${base}_${++tables}`

  /** Creates `(id integer PRIMARY KEY, name text NOT NULL)` and returns its name. */
  const peopleTable = (base: string, rows: ReadonlyArray<Person> = []) =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const name = tableName(base)
      yield* sql`CREATE TABLE ${sql(name)} (id integer PRIMARY KEY, name text NOT NULL)`
      if (rows.length > 0) yield* sql`INSERT INTO ${sql(name)} ${sql.insert(rows)}`
      return name
    })

  const people = (table: string) =>
    Effect.flatMap(
      SqlClient.SqlClient,
      (sql) => sql<Person>`SELECT id, name FROM ${sql(table)} ORDER BY id`
    )

  const ids = (table: string) => Effect.map(people(table), (rows) => rows.map((row) => row.id))

  /** A transaction that has inserted row 1 and stays open until `release` is completed. */
  const openTransaction = Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const table = yield* peopleTable("outside")
    const inserted = yield* Deferred.make<void>()
    const release = yield* Deferred.make<void>()
    const transaction = yield* Effect.fork(sql.withTransaction(Effect.gen(function*() {
      yield* sql`INSERT INTO ${sql(table)} ${sql.insert({ id: 1, name: "one" })}`
      yield* Deferred.succeed(inserted, undefined)
      yield* Deferred.await(release)
    })))
    yield* Deferred.await(inserted)
    return { release, table, transaction }
  })

  const tableExists = (name: string) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.map(
        sql.onDialectOrElse({
          pg: () => sql`SELECT 1 AS found FROM pg_tables WHERE tablename = ${name}`,
          orElse: () => sql`SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = ${name}`
        }),
        (rows) => rows.length === 1
      ))

  const server = (): PgCases<R> => {
    if (client.pg === undefined) throw new Error(`${client.name}: a pg client needs its pg cases`)
    return client.pg
  }

  it.layer(client.layer, { timeout: "60 seconds" })(client.name, (it) => {
    describe("the sql template", () => {
      it.effect("sql.in(values) interpolates one placeholder per element", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("in", [1, 2, 3, 4].map((id) => ({ id, name: `p${id}` })))
          const statement = sql<{ id: number }>`SELECT id FROM ${sql(table)} WHERE id IN ${sql.in([1, 3])} ORDER BY id`
          const [text, params] = statement.compile()
          assert.include(text, dialect === "pg" ? "IN ($1,$2)" : "IN (?,?)")
          assert.deepStrictEqual(params, [1, 3])
          assert.deepStrictEqual((yield* statement).map((row) => row.id), [1, 3])
        }))

      it.effect("sql.in(column, values) is a whole condition, and 1=0 when the array is empty", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("in_column", [1, 2, 3].map((id) => ({ id, name: `p${id}` })))
          const some = yield* sql<{ id: number }>`SELECT id FROM ${sql(table)} WHERE ${
            sql.in("id", [2, 3])
          } ORDER BY id`
          assert.deepStrictEqual(some.map((row) => row.id), [2, 3])
          const none = yield* sql`SELECT id FROM ${sql(table)} WHERE ${sql.in("id", [])}`
          assert.deepStrictEqual(none, [])
        }))

      it.effect("sql.and / sql.or / sql.csv compose fragments", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("fragments", [1, 2, 3, 4].map((id) => ({ id, name: `p${id}` })))
          const rows = yield* sql<{ id: number }>`SELECT id FROM ${sql(table)} WHERE ${
            sql.or([sql`id = ${1}`, sql.and([sql`id > ${2}`, sql`name <> ${"p4"}`])])
          } ${sql.csv("ORDER BY", ["id"])}`
          assert.deepStrictEqual(rows.map((row) => row.id), [1, 3])
        }))

      it.effect("a failing statement fails with SqlError whose cause is the driver's error", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const error = yield* Effect.flip(sql`SELECT * FROM ${sql(tableName("missing"))}`)
          assert.instanceOf(error, SqlError)
          assert.isDefined(error.cause)
          if (capabilities.isDisconnect !== undefined) assert.isFalse(capabilities.isDisconnect(error))
        }))

      if (dialect === "pg") {
        it.effect("pg: an array as a parameter binds a PostgreSQL array", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const table = yield* peopleTable("any", [1, 2, 3].map((id) => ({ id, name: `p${id}` })))
            const [row] = yield* sql<{ a: Array<number> }>`SELECT ${[1, 2, 3]}::int[] AS a`
            assert.deepStrictEqual(row?.a, [1, 2, 3])
            const rows = yield* sql<{ id: number }>`SELECT id FROM ${sql(table)} WHERE id = ANY(${[1, 3]}) ORDER BY id`
            assert.deepStrictEqual(rows.map((r) => r.id), [1, 3])
          }))
      }
    })

    describe("insert and update helpers", () => {
      it.effect("sql.insert takes a record and an array of records", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("insert")
          yield* sql`INSERT INTO ${sql(table)} ${sql.insert({ id: 1, name: "one" })}`
          yield* sql`INSERT INTO ${sql(table)} ${sql.insert([{ id: 2, name: "two" }, { id: 3, name: "three" }])}`
          assert.deepStrictEqual(yield* people(table), [
            { id: 1, name: "one" },
            { id: 2, name: "two" },
            { id: 3, name: "three" }
          ])
        }))

      it.effect("sql.insert(...).returning(\"*\") returns the inserted rows", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("returning")
          const one = yield* sql<Person>`INSERT INTO ${sql(table)} ${sql.insert({ id: 1, name: "one" }).returning("*")}`
          assert.deepStrictEqual(one, [{ id: 1, name: "one" }])
          const two = yield* sql<Person>`INSERT INTO ${sql(table)} ${
            sql.insert([{ id: 2, name: "two" }, { id: 3, name: "three" }]).returning("*")
          }`
          assert.deepStrictEqual(two, [{ id: 2, name: "two" }, { id: 3, name: "three" }])
        }))

      it.effect("sql.update sets a record's columns, leaving out the omitted ones, with RETURNING", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("update", [{ id: 1, name: "one" }, { id: 2, name: "two" }])
          yield* sql`UPDATE ${sql(table)} SET ${sql.update({ id: 1, name: "uno" }, ["id"])} WHERE id = ${1}`
          const returned = yield* sql<Person>`UPDATE ${sql(table)} SET ${
            sql.update({ name: "dos" })
          } WHERE id = ${2} RETURNING *`
          assert.deepStrictEqual(returned, [{ id: 2, name: "dos" }])
          assert.deepStrictEqual(yield* people(table), [{ id: 1, name: "uno" }, { id: 2, name: "dos" }])
        }))

      if (dialect === "pg") {
        it.effect("pg: sql.updateValues updates several rows from an array of records", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const table = yield* peopleTable("update_values", [1, 2, 3].map((id) => ({ id, name: `p${id}` })))
            const returned = yield* sql<Person>`UPDATE ${sql(table)} SET name = data.name FROM ${
              sql.updateValues([{ id: 1, name: "a" }, { id: 3, name: "c" }], "data")
            } WHERE ${sql(table)}.id = data.id::int RETURNING ${sql(table)}.*`
            assert.deepStrictEqual([...returned].sort((a, b) => a.id - b.id), [{ id: 1, name: "a" }, {
              id: 3,
              name: "c"
            }])
            assert.deepStrictEqual((yield* people(table)).map((row) => row.name), ["a", "p2", "c"])
          }))
      }
    })

    describe("SqlSchema", () => {
      it.effect("findAll encodes the request and decodes every row", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("find_all", [1, 2, 3].map((id) => ({ id, name: `p${id}` })))
          const above = SqlSchema.findAll({
            Request: Schema.Struct({ min: Schema.NumberFromString }),
            Result: Person,
            execute: ({ min }) => sql`SELECT id, name FROM ${sql(table)} WHERE id > ${Number(min)} ORDER BY id`
          })
          assert.deepStrictEqual(yield* above({ min: 1 }), [{ id: 2, name: "p2" }, { id: 3, name: "p3" }])
          assert.deepStrictEqual(yield* above({ min: 3 }), [])
        }))

      it.effect("findOne answers Some for a row and None for none; single fails with NoSuchElementException", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("find_one", [{ id: 1, name: "one" }])
          const options = {
            Request: Schema.Number,
            Result: Person,
            execute: (id: number) => sql`SELECT id, name FROM ${sql(table)} WHERE id = ${id}`
          }
          const findOne = SqlSchema.findOne(options)
          assert.deepStrictEqual(yield* findOne(1), Option.some({ id: 1, name: "one" }))
          assert.deepStrictEqual(yield* findOne(2), Option.none())
          const single = SqlSchema.single(options)
          assert.deepStrictEqual(yield* single(1), { id: 1, name: "one" })
          const error = yield* Effect.flip(single(2))
          assert.isTrue(Cause.isNoSuchElementException(error))
        }))

      it.effect("void runs the encoded request; a row that does not fit the Result schema is a ParseError", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("void")
          const insert = SqlSchema.void({
            Request: Person,
            execute: (person) => sql`INSERT INTO ${sql(table)} ${sql.insert(person)}`
          })
          yield* insert({ id: 7, name: "seven" })
          assert.deepStrictEqual(yield* people(table), [{ id: 7, name: "seven" }])
          const wrong = SqlSchema.findAll({
            Request: Schema.Void,
            Result: Schema.Struct({ id: Schema.String }),
            execute: () => sql`SELECT id FROM ${sql(table)}`
          })
          const error = yield* Effect.flip(wrong(undefined))
          assert.isTrue(ParseResult.isParseError(error))
        }))
    })

    describe("withTransaction", () => {
      it.effect("commits the transaction's statements", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("commit")
          yield* sql.withTransaction(
            Effect.zipRight(
              sql`INSERT INTO ${sql(table)} ${sql.insert({ id: 1, name: "one" })}`,
              sql`INSERT INTO ${sql(table)} ${sql.insert({ id: 2, name: "two" })}`
            )
          )
          assert.deepStrictEqual(yield* ids(table), [1, 2])
        }))

      it.effect("a failing inner transaction rolls back to its savepoint and the outer one commits", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("savepoint")
          const insert = (id: number) => sql`INSERT INTO ${sql(table)} ${sql.insert({ id, name: `p${id}` })}`
          const inner = yield* sql.withTransaction(Effect.gen(function*() {
            yield* insert(1)
            const inner = yield* Effect.either(sql.withTransaction(
              Effect.zipRight(insert(2), Effect.fail("inner fails" as const))
            ))
            yield* insert(3)
            // the outer transaction still reads its own rows, the inner one's gone
            assert.deepStrictEqual(yield* ids(table), [1, 3])
            return inner
          }))
          assert.deepStrictEqual(inner, Either.left("inner fails" as const))
          assert.deepStrictEqual(yield* ids(table), [1, 3])
        }))

      it.effect("a failing outer transaction rolls back everything, a committed inner one included", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("rollback")
          const insert = (id: number) => sql`INSERT INTO ${sql(table)} ${sql.insert({ id, name: `p${id}` })}`
          const exit = yield* Effect.exit(sql.withTransaction(Effect.gen(function*() {
            yield* insert(1)
            yield* sql.withTransaction(insert(2))
            return yield* Effect.fail("outer fails" as const)
          })))
          assert.deepStrictEqual(exit, Exit.fail("outer fails" as const))
          assert.deepStrictEqual(yield* ids(table), [])
          // a statement that fails inside rolls back the same way
          const error = yield* Effect.flip(sql.withTransaction(Effect.zipRight(insert(3), insert(3))))
          assert.instanceOf(error, SqlError)
          assert.deepStrictEqual(yield* ids(table), [])
        }))

      it.effect("an interrupted transaction rolls back, and the client still serves", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("interrupted")
          const inserted = yield* Deferred.make<void>()
          const fiber = yield* Effect.fork(sql.withTransaction(Effect.gen(function*() {
            yield* sql`INSERT INTO ${sql(table)} ${sql.insert({ id: 1, name: "one" })}`
            yield* Deferred.succeed(inserted, undefined)
            return yield* Effect.never
          })))
          yield* Deferred.await(inserted)
          const exit = yield* Fiber.interrupt(fiber)
          assert.isTrue(Exit.isInterrupted(exit))
          assert.deepStrictEqual(yield* ids(table), [])
          assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
          if (dialect === "pg") {
            const { applicationName, query } = server()
            yield* eventually(
              Effect.map(
                query(
                  "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 " +
                    "AND state LIKE 'idle in transaction%'",
                  [applicationName]
                ),
                (rows) => rows[0]?.["n"] === 0
              ),
              "no session stays idle in transaction"
            )
          }
        }))

      if (capabilities.oneConnection) {
        it.effect(
          "one connection: a statement outside an open transaction waits for it to end, then sees its rows",
          () =>
            Effect.gen(function*() {
              const { release, table, transaction } = yield* openTransaction
              const outside = yield* Effect.fork(ids(table))
              yield* Effect.sleep("100 millis")
              assert.isTrue(Option.isNone(yield* Fiber.poll(outside)), "the outside statement waits")
              yield* Deferred.succeed(release, undefined)
              yield* Fiber.join(transaction)
              assert.deepStrictEqual(yield* Fiber.join(outside), [1])
            })
        )
      } else {
        it.effect("a statement outside an open transaction runs at once and does not see its uncommitted rows", () =>
          Effect.gen(function*() {
            const { release, table, transaction } = yield* openTransaction
            assert.deepStrictEqual(yield* ids(table), [])
            yield* Deferred.succeed(release, undefined)
            yield* Fiber.join(transaction)
            assert.deepStrictEqual(yield* ids(table), [1])
          }))
      }
    })

    describe("streams", () => {
      if (capabilities.stream) {
        it.effect(
          `sql.stream delivers ${STREAM_ROWS.toLocaleString("en")} rows in more than one chunk, in bounded memory`,
          () =>
            Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              const statement = sql.onDialectOrElse({
                pg: () =>
                  sql<{ n: number; payload: string }>`SELECT n, repeat('x', ${STREAM_PAYLOAD}) AS payload
                    FROM generate_series(1, ${STREAM_ROWS}::int) AS n`,
                orElse: () =>
                  sql<{ n: number; payload: string }>`WITH RECURSIVE s(n) AS (
                    SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ${STREAM_ROWS}
                  ) SELECT n, hex(zeroblob(${STREAM_PAYLOAD / 2})) AS payload FROM s`
              })
              const baseline = heapUsed()
              const result = yield* statement.stream.pipe(
                Stream.chunks,
                Stream.runFold(
                  { rows: 0, chunks: 0, inOrder: true, payloads: true, growth: 0 },
                  (acc, chunk) => {
                    let { growth, inOrder, payloads } = acc
                    let expected = acc.rows
                    for (const row of chunk) {
                      expected++
                      if (Number(row.n) !== expected) inOrder = false
                      if (row.payload.length !== STREAM_PAYLOAD) payloads = false
                    }
                    const rows = acc.rows + Chunk.size(chunk)
                    // a sample every 10,000 rows, after a full collection when `gc` is available
                    if (gc !== undefined && Math.floor(rows / 10_000) > Math.floor(acc.rows / 10_000)) {
                      growth = Math.max(growth, heapUsed() - baseline)
                    }
                    return { rows, chunks: acc.chunks + 1, inOrder, payloads, growth }
                  }
                )
              )
              assert.strictEqual(result.rows, STREAM_ROWS)
              assert.isTrue(result.inOrder, "rows arrive in order, none lost")
              assert.isTrue(result.payloads)
              assert.isAbove(result.chunks, 1, "rows arrive in more than one chunk")
              if (gc !== undefined) {
                assert.isBelow(
                  result.growth,
                  STREAM_HEAP_BOUND,
                  `heap growth ${(result.growth / 1048576).toFixed(1)} MB while streaming ` +
                    `${((STREAM_ROWS * STREAM_PAYLOAD) / 1048576).toFixed(0)} MB of rows`
                )
              }
              yield* Effect.logDebug(
                `${result.chunks} chunks, peak heap growth ${(result.growth / 1048576).toFixed(1)} MB` +
                  (gc === undefined ? " (no gc: not measured)" : "")
              )
            }),
          { timeout: 60_000 }
        )

        it.effect("a stream inside withTransaction reads on the transaction's connection", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const table = yield* peopleTable("stream_tx")
            const streamed = yield* sql.withTransaction(Effect.gen(function*() {
              yield* sql`INSERT INTO ${sql(table)} ${sql.insert([1, 2, 3].map((id) => ({ id, name: `p${id}` })))}`
              return yield* Stream.runCollect(sql<Person>`SELECT id, name FROM ${sql(table)} ORDER BY id`.stream)
            }))
            assert.deepStrictEqual(Chunk.toReadonlyArray(streamed).map((row) => row.id), [1, 2, 3])
          }))

        it.effect("a stream that ends early (Stream.take) gives its connection back", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            for (let i = 0; i < 20; i++) {
              const taken = yield* sql.onDialectOrElse({
                pg: () => sql<{ n: number }>`SELECT n FROM generate_series(1, 100000) AS n`,
                orElse: () =>
                  sql<{ n: number }>`WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100000)
                    SELECT n FROM s`
              }).stream.pipe(Stream.take(3), Stream.runCollect)
              assert.deepStrictEqual(Chunk.toReadonlyArray(taken).map((row) => Number(row.n)), [1, 2, 3])
            }
            assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
          }))
      } else {
        it.effect(`${client.name}: sql.stream dies with executeStream not implemented`, () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const exit = yield* Effect.exit(Stream.runCount(sql`SELECT 1 AS one`.stream))
            assert.isTrue(Exit.isFailure(exit))
            if (Exit.isFailure(exit)) {
              const defect = Cause.dieOption(exit.cause)
              assert.isTrue(Option.isSome(defect), "a defect, not a typed failure")
              if (Option.isSome(defect)) {
                assert.isTrue(Cause.isRuntimeException(defect.value))
                assert.strictEqual((defect.value as Cause.RuntimeException).message, "executeStream not implemented")
              }
            }
            assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
          }))
      }
    })

    describe("SqlResolver", () => {
      it.effect("findById batches a forEach of requests into one statement", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("resolver", [1, 2, 3].map((id) => ({ id, name: `p${id}` })))
          const calls: Array<ReadonlyArray<number>> = []
          const resolver = yield* SqlResolver.findById("PersonById", {
            Id: Schema.Number,
            Result: Person,
            ResultId: (person) => person.id,
            execute: (requested) => {
              calls.push(requested)
              return sql`SELECT id, name FROM ${sql(table)} WHERE ${sql.in("id", requested)}`
            }
          })
          const [found, statements] = yield* countingStatements(
            Effect.forEach([3, 1, 99, 2], resolver.execute, { batching: true })
          )
          assert.deepStrictEqual(found, [
            Option.some({ id: 3, name: "p3" }),
            Option.some({ id: 1, name: "p1" }),
            Option.none(),
            Option.some({ id: 2, name: "p2" })
          ])
          assert.strictEqual(calls.length, 1)
          assert.deepStrictEqual([...(calls[0] ?? [])].sort((a, b) => a - b), [1, 2, 3, 99])
          assert.strictEqual(statements.length, 1, statements.join("\n"))
        }))

      it.effect("ordered batches inserts into one INSERT ... RETURNING, and sees a transaction's rows", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const table = yield* peopleTable("ordered")
          const insert = yield* SqlResolver.ordered("InsertPerson", {
            Request: Person,
            Result: Person,
            execute: (requests) => sql`INSERT INTO ${sql(table)} ${sql.insert(requests).returning("*")}`
          })
          const byId = yield* SqlResolver.findById("PersonByIdInTransaction", {
            Id: Schema.Number,
            Result: Person,
            ResultId: (person) => person.id,
            execute: (requested) => sql`SELECT id, name FROM ${sql(table)} WHERE ${sql.in("id", requested)}`
          })
          const [found, statements] = yield* countingStatements(sql.withTransaction(Effect.gen(function*() {
            const inserted = yield* Effect.forEach(
              [1, 2, 3].map((id) => ({ id, name: `p${id}` })),
              insert.execute,
              { batching: true }
            )
            assert.deepStrictEqual(inserted.map((person) => person.id), [1, 2, 3])
            return yield* Effect.forEach([1, 2, 3], byId.execute, { batching: true })
          })))
          assert.deepStrictEqual(found.map(Option.map((person) => person.name)), [
            Option.some("p1"),
            Option.some("p2"),
            Option.some("p3")
          ])
          assert.strictEqual(statements.length, 2, statements.join("\n"))
          assert.deepStrictEqual(yield* ids(table), [1, 2, 3])
        }))
    })

    describe("Migrator", () => {
      it.effect("runs a record of migrations in order, records them, and runs none twice", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const migrations = tableName("migrations")
          const first = tableName("mig_people")
          const second = tableName("mig_pets")
          const third = tableName("mig_toys")
          const create = (name: string) =>
            Effect.asVoid(
              Effect.flatMap(SqlClient.SqlClient, (sql) => sql`CREATE TABLE ${sql(name)} (id integer PRIMARY KEY)`)
            )
          const record = {
            "2_create_pets": create(second),
            "1_create_people": create(first)
          }
          const loader = Migrator.fromRecord
          const ran = yield* client.migrate({ loader: loader(record), table: migrations })
          assert.deepStrictEqual(ran, [[1, "create_people"], [2, "create_pets"]])
          assert.isTrue(yield* tableExists(first))
          assert.isTrue(yield* tableExists(second))
          const recorded = yield* sql<{ migration_id: number; name: string }>`SELECT migration_id, name FROM ${
            sql(migrations)
          } ORDER BY migration_id`
          assert.deepStrictEqual(recorded.map((row) => [row.migration_id, row.name]), [[1, "create_people"], [
            2,
            "create_pets"
          ]])
          assert.deepStrictEqual(yield* client.migrate({ loader: loader(record), table: migrations }), [])
          const more = yield* client.migrate({
            loader: loader({ ...record, "3_create_toys": create(third) }),
            table: migrations
          })
          assert.deepStrictEqual(more, [[3, "create_toys"]])
          assert.isTrue(yield* tableExists(third))
        }))

      it.effect("a failing migration dies, and neither its tables nor its record stay", () =>
        Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const migrations = tableName("migrations")
          const created = tableName("mig_created")
          const loader = Migrator.fromRecord({
            "1_create_then_fail": Effect.gen(function*() {
              const sql = yield* SqlClient.SqlClient
              yield* sql`CREATE TABLE ${sql(created)} (id integer PRIMARY KEY)`
              yield* sql`SELECT * FROM ${sql(tableName("mig_missing"))}`
            })
          })
          const exit = yield* Effect.exit(client.migrate({ loader, table: migrations }))
          assert.isTrue(Exit.isFailure(exit) && Option.isSome(Cause.dieOption(exit.cause)), String(exit))
          assert.isFalse(yield* tableExists(created))
          assert.deepStrictEqual(yield* sql`SELECT migration_id FROM ${sql(migrations)}`, [])
        }))
    })

    if (dialect === "pg") {
      describe("PostgreSQL server", () => {
        const activeSleeps = Effect.suspend(() => {
          const { applicationName, query } = server()
          return Effect.map(
            query(
              "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'active' " +
                "AND query LIKE '%pg_sleep%'",
              [applicationName]
            ),
            (rows) => Number(rows[0]?.["n"])
          )
        })

        it.effect("interrupting a statement cancels it on the server", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const fiber = yield* Effect.fork(sql`SELECT pg_sleep(30)`)
            yield* eventually(Effect.map(activeSleeps, (n) => n === 1), "pg_sleep runs on the server")
            yield* Effect.sleep("200 millis")
            yield* Fiber.interrupt(fiber)
            yield* eventually(Effect.map(activeSleeps, (n) => n === 0), "the backend's pg_sleep is cancelled")
            // the next statements are not hit by a late cancel
            for (let i = 0; i < 5; i++) {
              assert.deepStrictEqual(yield* sql`SELECT ${i}::int AS i, pg_sleep(0.05)::text AS slept`, [{
                i,
                slept: ""
              }])
            }
          }))

        it.effect("interrupting a statement inside withTransaction cancels it and rolls back", () =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            const table = yield* peopleTable("interrupted_statement")
            const fiber = yield* Effect.fork(sql.withTransaction(Effect.zipRight(
              sql`INSERT INTO ${sql(table)} ${sql.insert({ id: 1, name: "one" })}`,
              sql`SELECT pg_sleep(30)`
            )))
            yield* eventually(Effect.map(activeSleeps, (n) => n === 1), "pg_sleep runs on the server")
            yield* Effect.sleep("200 millis")
            yield* Fiber.interrupt(fiber)
            yield* eventually(Effect.map(activeSleeps, (n) => n === 0), "the backend's pg_sleep is cancelled")
            assert.deepStrictEqual(yield* ids(table), [])
            assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
          }))

        it.layer(server().oneConnectionLayer)("maxConnections: 1", (it) => {
          if (server().cancelsWithPoolExhausted) {
            it.effect("interrupting the statement that holds the only connection cancels it on the server", () =>
              Effect.gen(function*() {
                const sql = yield* SqlClient.SqlClient
                const fiber = yield* Effect.fork(sql`SELECT pg_sleep(30)`)
                yield* eventually(Effect.map(activeSleeps, (n) => n === 1), "pg_sleep runs on the server")
                yield* Effect.sleep("200 millis")
                yield* Fiber.interrupt(fiber)
                yield* eventually(Effect.map(activeSleeps, (n) => n === 0), "the backend's pg_sleep is cancelled")
                assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
              }))
          } else {
            it.effect(
              `${client.name}: interrupting the statement that holds the only connection does not cancel it (the ` +
                "cancel waits for a connection of the same pool and gives up after 5 s)",
              () =>
                Effect.gen(function*() {
                  const sql = yield* SqlClient.SqlClient
                  const { applicationName, query } = server()
                  const fiber = yield* Effect.fork(sql`SELECT pg_sleep(30)`)
                  yield* eventually(Effect.map(activeSleeps, (n) => n === 1), "pg_sleep runs on the server")
                  yield* Effect.sleep("200 millis")
                  yield* Fiber.interrupt(fiber)
                  assert.strictEqual(yield* activeSleeps, 1, "pg_sleep still runs after the interruption returned")
                  // the harness cancels it, or the next statement would wait for the rest of the 30 seconds
                  yield* query(
                    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = $1 " +
                      "AND query LIKE '%pg_sleep%'",
                    [applicationName]
                  )
                  assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
                }),
              { timeout: 60_000 }
            )
          }
        })

        /** Forks (as a daemon: a stream that never ends must not hold the test) a stream the server restarts under. */
        const streamThroughRestart = Effect.gen(function*() {
          const sql = yield* SqlClient.SqlClient
          const started = yield* Deferred.make<void>()
          const restarted = yield* Deferred.make<void>()
          const consumer = yield* Effect.forkDaemon(
            sql<{ n: number }>`SELECT n FROM generate_series(1, 10000000) AS n`.stream.pipe(
              Stream.runForEachChunk(() =>
                Effect.zipRight(Deferred.succeed(started, undefined), Deferred.await(restarted))
              )
            )
          )
          yield* Deferred.await(started)
          yield* server().restart
          yield* Deferred.succeed(restarted, undefined)
          return consumer
        })

        if (server().streamFailsOnDisconnect) {
          it.effect(
            "a server restart mid-stream fails the stream with SqlError, and the next statement succeeds",
            () =>
              Effect.gen(function*() {
                const sql = yield* SqlClient.SqlClient
                const consumer = yield* streamThroughRestart
                const exit = yield* Fiber.await(consumer).pipe(
                  Effect.timeoutFail({
                    duration: "20 seconds",
                    onTimeout: () => new Error("the stream did not end within 20 s of the restart")
                  })
                )
                assert.isTrue(Exit.isFailure(exit), String(exit))
                if (Exit.isFailure(exit)) {
                  const failure = Cause.failureOption(exit.cause)
                  assert.isTrue(Option.isSome(failure), `a typed failure: ${Cause.pretty(exit.cause)}`)
                  if (Option.isSome(failure)) {
                    const error = failure.value
                    assert.instanceOf(error, SqlError)
                    if (capabilities.isDisconnect !== undefined) {
                      assert.isTrue(capabilities.isDisconnect(error), `isDisconnect: ${String(error.cause)}`)
                    }
                  }
                }
                assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
              }),
            { timeout: 60_000 }
          )
        } else {
          it.effect(
            `${client.name}: a server restart mid-stream never ends the stream (pg-cursor's close, the stream's ` +
              "finalizer, waits for a readyForQuery the dead connection never sends); other statements succeed",
            () =>
              Effect.gen(function*() {
                const sql = yield* SqlClient.SqlClient
                const consumer = yield* streamThroughRestart
                yield* Effect.sleep("5 seconds")
                assert.isTrue(Option.isNone(yield* Fiber.poll(consumer)), "the stream is still running")
                assert.deepStrictEqual(yield* sql`SELECT 1 AS one`, [{ one: 1 }])
              }),
            { timeout: 60_000 }
          )
        }
      })
    }
  })
}

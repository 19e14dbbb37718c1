/**
 * An `@effect/sql` program, written once against `SqlClient`, run on `@effect/sql-sqlite-node`'s client and on
 * effect-reservoir's, the layer being the only difference; then what the pool adds: its stats and events, and a
 * stream read in batches. Run it with `npx tsx examples/sql.ts`.
 */
import { SqlClient, SqlSchema } from "@effect/sql"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import { Effect, Schema, Stream } from "effect"
import * as Pool from "../src/Pool.js"
import * as SqlSqlite from "../src/Sql/Sqlite.js"

class Note extends Schema.Class<Note>("Note")({ id: Schema.Number, body: Schema.String }) {}

/** The program: it knows `SqlClient` only. */
const notes = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)`
  yield* sql`INSERT INTO notes ${sql.insert([{ id: 1, body: "tea" }, { id: 2, body: "milk" }])}`
  // a failing inner transaction rolls back to its savepoint; the outer one commits
  yield* sql.withTransaction(Effect.gen(function*() {
    yield* sql`INSERT INTO notes ${sql.insert({ id: 3, body: "sugar" })}`
    yield* Effect.ignore(sql.withTransaction(
      Effect.zipRight(sql`INSERT INTO notes ${sql.insert({ id: 4, body: "salt" })}`, Effect.fail("no salt"))
    ))
  }))
  const findAll = SqlSchema.findAll({
    Request: Schema.Array(Schema.Number),
    Result: Note,
    execute: (ids) => sql`SELECT id, body FROM notes WHERE id IN ${sql.in(ids)} ORDER BY id`
  })
  return (yield* findAll([1, 2, 3, 4])).map((note) => note.body)
})

export const program = Effect.gen(function*() {
  // before: @effect/sql-sqlite-node
  const before = yield* Effect.provide(notes, SqliteClient.layer({ filename: ":memory:" }))
  // after: the same program, one Layer changed
  const after = yield* Effect.provide(notes, SqlSqlite.layer({ filename: ":memory:" }))

  // what comes with the pool: the client's pool, its stats and events; and streams (which sql-sqlite-node lacks)
  const extras = yield* Effect.gen(function*() {
    const sql = yield* SqlSqlite.SqliteSqlClient
    const lendings = yield* Pool.stats(sql.pool)
    const counted = yield* sql`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
      SELECT i FROM n`.stream.pipe(
      Stream.chunks,
      Stream.runFold({ rows: 0, batches: 0 }, (acc, chunk) => ({
        rows: acc.rows + chunk.length,
        batches: acc.batches + 1
      }))
    )
    return { open: lendings.open, counted }
  }).pipe(Effect.provide(SqlSqlite.layer({ filename: ":memory:" })))
  return { before, after, extras }
})

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then((result) => console.log(result))
}

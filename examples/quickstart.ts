import { Console, Context, Effect, Layer } from "effect"
import * as Pg from "../src/Driver/Pg.js"
import * as Pool from "../src/Pool.js"

// the pool is a service of your program, under your own Tag
export class Db extends Context.Tag("app/Db")<Db, Pool.Pool<Pg.PgConnection, Pg.PgError>>() {}

// the PoolLayer: up to 10 connections over the Pg driver, which reads DATABASE_URL
export const DbLive = Pool.layer(Db, { driver: Pg.PgDriver, size: 10 }).pipe(Layer.provide(Pg.layerConfig()))

export const program = Effect.gen(function*() {
  const db = yield* Db
  const rows = yield* Pool.transaction(db, (c) => db.driver.query(c, "SELECT $1::int + 1 AS answer", [41]))
  yield* Console.log(rows, yield* Pool.status(db))
})

if (import.meta.url === `file://${process.argv[1]}`) Effect.runPromise(Effect.provide(program, DbLive))

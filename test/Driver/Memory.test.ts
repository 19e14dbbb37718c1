import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Memory from "../../src/Driver/Memory.js"
import { conformance, type Fixture } from "./conformance.js"

conformance("Memory", {
  layer: Layer.empty,
  notifiesOnKill: true,
  knowsTransactions: false,
  fixture: Effect.map(Memory.make(), (db): Fixture<Memory.MemoryConnection, Memory.MemoryError> => ({
    driver: db.driver,
    isOpen: (connection) => Effect.sync(() => connection.alive && !connection.closed),
    trackCloses: (connection) =>
      Effect.map(
        db.stats,
        (before) =>
          Effect.map(db.stats, (after) =>
            connection.closed ? after.closed - before.closed + after.closedTwice - before.closedTwice : 0)
      ),
    kill: (connection) => db.kill(connection),
    write: (connection, key) => Effect.asVoid(db.driver.query(connection, `INSERT INTO kv VALUES ('${key}')`)),
    isCommitted: (key) => Effect.map(db.committed, (statements) => statements.some((s) => s.includes(`'${key}'`))),
    failOrdinarily: (connection) => Effect.zipRight(db.failNextQueries(1), db.driver.query(connection, "SELECT 1"))
  }))
})

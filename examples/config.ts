/**
 * A pool's configuration as a `Schema`: decode it from JSON, build a pool from it, read it back with `Pool.config`,
 * rebuild the same pool with `Pool.recreate`, and see bad options fail with one `PoolConfigError` listing the
 * problems. Run it with `npx tsx examples/config.ts`.
 */
import { Effect, Schema } from "effect"
import * as Memory from "../src/Driver/Memory.js"
import * as Pool from "../src/Pool.js"

const json = `{ "name": "from-json", "size": 3, "maxOverflow": "unbounded", "timeout": "5 seconds", "order": "lifo" }`

export const program = Effect.gen(function*() {
  const db = yield* Memory.make()

  // times decode from milliseconds or from strings such as "5 seconds"; missing fields get their defaults
  const decoded = yield* Schema.decodeUnknown(Schema.parseJson(Pool.PoolConfig))(json)
  const pool = yield* Pool.make({ ...decoded, driver: db.driver })

  // Pool.config encodes back to JSON: times in milliseconds, "Infinity" for no limit
  const encoded = Pool.config(pool)

  // recreate: a new pool with the same driver, policies and configuration (the old one is left alone)
  const again = yield* Pool.recreate(pool)
  const sameConfig = JSON.stringify(Pool.config(again)) === JSON.stringify(encoded)

  // bad options fail at construction, never silently clamped
  const invalid = yield* Effect.flip(Pool.make({ driver: db.driver, name: "bad", size: 2, maxOverflow: 0, min: 3 }))
  const malformed = yield* Effect.flip(
    Pool.make({ driver: db.driver, name: "worse", size: -1, maxOverflow: 1.5, order: "random" as "fifo" })
  )

  return { encoded, sameConfig, invalid: invalid.problems, malformed: malformed.message }
}).pipe(Effect.scoped)

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}

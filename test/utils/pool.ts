/**
 * Helpers for pool tests: unique names, settling background fibers, and a pool over a fresh Memory database.
 */
import { Effect } from "effect"
import * as Memory from "../../src/Driver/Memory.js"
import * as Pool from "../../src/Pool.js"

let counter = 0

/** A pool name unique within the test run (tests run concurrently and metrics are global). */
export const uniqueName = (prefix: string): string => `${prefix}-${process.pid}-${++counter}`

/** Lets every fiber that is ready run (hand-offs, background connects and closes) before the test looks. */
export const settle: Effect.Effect<void> = Effect.repeatN(Effect.yieldNow(), 50)

/** A fresh Memory database and a pool over it. */
export const memoryPool = (
  options: Omit<Pool.BaseOptions, "name"> & {
    readonly name?: string
    readonly policies?: Pool.Options<Memory.MemoryConnection, Memory.MemoryError>["policies"]
    readonly memory?: Memory.MemoryOptions
  } = {}
) =>
  Effect.gen(function*() {
    const db = yield* Memory.make(options.memory)
    const { memory: _, ...rest } = options
    // the core's tests are about the core: no default policies unless a test lists them
    const pool = yield* Pool.make({
      ...rest,
      name: options.name ?? uniqueName("pool"),
      driver: db.driver,
      policies: options.policies ?? []
    })
    return { db, pool } as const
  })

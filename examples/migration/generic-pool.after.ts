/**
 * The "after" side of docs/migration/generic-pool.md: the same three pairs as `generic-pool.before.ts`, on
 * effect-reservoir's pool of a bare scoped `acquire` (no driver: the sandboxes are not database connections). Run
 * it with `npx tsx examples/migration/generic-pool.after.ts`.
 */
import { Data, Effect } from "effect"
import * as vm from "node:vm"
import * as Pool from "../../src/Pool.js"
import { invoices, type Sandbox, template } from "./generic-pool.before.js"

const render = (sandbox: Sandbox, [who, cents]: readonly [string, number]) =>
  Effect.sync(() => vm.runInContext(`render(${JSON.stringify(who)}, ${cents})`, sandbox.context) as string)

// --- pair 1: a scoped acquire, the pool's options, Pool.use ---

/** The factory: `acquire` opens a sandbox, its finalizer (`destroy`) runs when the pool closes it. */
export const makePool = (created: Array<number>) =>
  Pool.make({
    acquire: Effect.acquireRelease(
      Effect.sync((): Sandbox => {
        const context = vm.createContext({})
        vm.runInContext(template, context)
        const sandbox = { id: created.length + 1, context }
        created.push(sandbox.id)
        return sandbox
      }),
      () => Effect.void
    ),
    name: "sandboxes",
    size: 2, // max: 2 ...
    maxOverflow: 0, // ... as a hard limit
    min: 1, // min: 1
    timeout: "2 seconds", // acquireTimeoutMillis
    order: "fifo" // fifo: true
  })

export const renderAll = Effect.gen(function*() {
  const created: Array<number> = []
  const pool = yield* makePool(created)
  const lines = yield* Effect.forEach(invoices, (invoice) => Pool.use(pool, (sandbox) => render(sandbox, invoice)), {
    concurrency: "unbounded"
  })
  return { lines, created: created.length }
}).pipe(Effect.scoped) // drain() + clear(): closing the scope closes the pool

// --- pair 2: a sandbox found broken is invalidated, not returned ---

export const destroyBroken = Effect.gen(function*() {
  const pool = yield* makePool([])
  const sandbox = yield* Pool.use(pool, (sandbox) => Effect.as(Pool.invalidate(pool, sandbox), sandbox))
  const next = yield* Pool.use(pool, (next) => Effect.succeed(next))
  return { replaced: next.id !== sandbox.id, line: yield* Pool.use(pool, (s) => render(s, invoices[0]!)) }
}).pipe(Effect.scoped)

// --- pair 3: the factory cannot create ---

export class SandboxFailed extends Data.TaggedError("SandboxFailed")<{ readonly message: string }> {}

export const failingFactory = Effect.gen(function*() {
  let attempts = 0
  const pool = yield* Pool.make({
    acquire: Effect.suspend(() => {
      attempts++
      return Effect.fail(new SandboxFailed({ message: "sandbox failed to start" })).pipe(Effect.delay("10 millis"))
    }),
    name: "sandboxes",
    size: 1,
    maxOverflow: 0,
    timeout: 200
  })
  // the checkout fails with the factory's own error as soon as the create fails
  const error = yield* Effect.flip(Pool.use(pool, () => Effect.void))
  return { name: error._tag, message: error.message, attempts }
}).pipe(Effect.scoped)

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(Effect.all([renderAll, destroyBroken, failingFactory])).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
}

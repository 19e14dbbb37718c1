/**
 * Every message a page quotes is what the code prints (the convention is in docs/internals.md, "Docs that stay
 * true"):
 *
 * - a ```text block right under `<!-- output: examples/x.ts -->` is what `tsx examples/x.ts` prints: the block is the
 *   end of its standard output (log lines may come before it);
 * - a message quoted in the prose (an error's message, a status line, a log line) is produced here through the public
 *   API, and the page must contain exactly that text.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Logger, LogLevel, Scope, TestClock, TestContext } from "effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Memory from "../src/Driver/Memory.js"
import * as Policy from "../src/Policy.js"
import * as Pool from "../src/Pool.js"
import { ConnectionRejected } from "../src/PoolError.js"
import { blocks, pages, root } from "./utils/markdown.js"

const all = pages().flatMap(blocks)

// --- output blocks ---------------------------------------------------------------------------------------------------

const outputs = all.filter((block) => block.marker?.kind === "output")

/** Runs an example as a reader would (`npx tsx examples/x.ts`), two at a time. */
const runs = new Map<string, Promise<string>>()
let running = 0
const queue: Array<() => void> = []
const run = (file: string): Promise<string> => {
  const started = runs.get(file)
  if (started !== undefined) return started
  const promise = new Promise<string>((resolve, reject) => {
    const start = () => {
      running++
      execFile(
        path.join(root, "node_modules", ".bin", "tsx"),
        [file],
        { cwd: root, timeout: 60_000, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, NO_COLOR: "1" } },
        (error, stdout, stderr) => {
          running--
          queue.shift()?.()
          if (error) reject(new Error(`${file} failed: ${error.message}\n${stderr}`))
          else resolve(stdout)
        }
      )
    }
    if (running < 2) start()
    else queue.push(start)
  })
  runs.set(file, promise)
  return promise
}

describe("docs: output blocks", () => {
  it("the pages have output blocks", () => {
    assert.isAbove(outputs.length, 0)
  })

  // start every run now; each test then waits for its own
  for (const block of outputs) void run(block.marker!.file).catch(() => {})

  for (const block of outputs) {
    const file = block.marker!.file
    it(`${block.page}:${block.line} is what ${file} prints`, async () => {
      assert.strictEqual(block.tag, "text", `${block.page}:${block.line}: fence an output block as text`)
      assert.isTrue(fs.existsSync(path.join(root, file)), `${block.page}:${block.line}: ${file} does not exist`)
      const stdout = await run(file)
      const tail = stdout.slice(Math.max(0, stdout.length - block.code.length))
      const atLineStart = stdout.length === block.code.length || stdout[stdout.length - block.code.length - 1] === "\n"
      assert.isTrue(
        tail === block.code && atLineStart,
        `${block.page}:${block.line} quotes:\n${block.code}\nbut ${file} prints:\n${stdout}`
      )
    }, 120_000)
  }

  it("every block a page introduces as what something prints is an output block", () => {
    const unmarked: Array<string> = []
    for (const page of pages()) {
      const lines = fs.readFileSync(path.join(root, page), "utf8").split("\n")
      for (const block of all.filter((b) => b.page === page && b.marker === undefined)) {
        let i = block.line - 2
        while (i >= 0 && lines[i]!.trim() === "") i--
        // the sentence before the block, which may wrap over a few lines
        const before = lines.slice(Math.max(0, i - 2), i + 1).join(" ")
        if (/\bprints\b.*:$/.test(before.trim())) {
          unmarked.push(`${page}:${block.line}`)
        }
      }
    }
    assert.deepStrictEqual(unmarked, [], "add <!-- output: examples/x.ts --> above these blocks")
  })
})

// --- messages quoted in the prose ------------------------------------------------------------------------------------

/** What the page says, with its line breaks and runs of spaces as single spaces. */
const text = (page: string) => fs.readFileSync(path.join(root, page), "utf8")
const flat = (s: string) => s.replace(/\s+/g, " ")

/** The messages checked here, to find the quoted ones that are not. */
const checked = new Set<string>()

/** Asserts that the page quotes `message` exactly, as inline code unless `inline` is false. */
const quotes = (page: string, message: string, options?: { readonly inline?: boolean }) => {
  checked.add(message)
  const wanted = options?.inline === false ? message : `\`${message}\``
  assert.include(flat(text(page)), flat(wanted), `${page} should quote what the code prints: ${message}`)
}

/** A Memory database and a pool over it named "api", with no policies. */
const api = (
  options: Partial<Pool.BaseOptions> & {
    readonly policies?: ReadonlyArray<Policy.Policy<Memory.MemoryConnection, Memory.MemoryError, any>>
  } = {}
) =>
  Effect.gen(function*() {
    const db = yield* Memory.make()
    const scope = yield* Scope.make()
    const pool = yield* Pool.make({
      driver: db.driver,
      name: "api",
      size: 1,
      maxOverflow: 0,
      timeout: "1 second",
      policies: [],
      ...options
    }).pipe(Scope.extend(scope))
    return { db, pool, scope }
  })

/** The messages the pool logs while `effect` runs, each with its level. */
const logsOf = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const logs: Array<string> = []
    const logger = Logger.make(({ logLevel, message }) => {
      const parts = Array.isArray(message) ? message : [message]
      logs.push(`${logLevel.label} ${String(parts[0])}`)
    })
    yield* effect.pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.Debug)
    )
    return logs
  })

describe("docs: quoted messages", () => {
  it.effect("errors.md: PoolTimeoutError, by phase", () =>
    Effect.gen(function*() {
      const wait = yield* Effect.gen(function*() {
        const { pool } = yield* api()
        const held = yield* Pool.checkout(pool)
        const waiter = yield* Effect.fork(Effect.flip(Pool.use(pool, () => Effect.void)))
        yield* TestClock.adjust("1 second")
        const error = yield* Fiber.join(waiter)
        yield* Pool.checkin(pool, held)
        return error.message
      })
      quotes("docs/errors.md", wait)

      const validate = yield* Effect.gen(function*() {
        const { pool } = yield* api()
        yield* Pool.listen(pool, { checkout: () => Effect.never })
        const checkout = yield* Effect.fork(Effect.flip(Pool.use(pool, () => Effect.void)))
        yield* TestClock.adjust("1 second")
        return (yield* Fiber.join(checkout)).message
      }).pipe(Effect.scoped)
      quotes("docs/errors.md", validate)

      const connect = yield* Effect.gen(function*() {
        const { db, pool } = yield* api({ connectTimeout: "5 seconds", timeout: "10 seconds" })
        yield* db.hangNextConnects(1)
        const checkout = yield* Effect.fork(Effect.flip(Pool.use(pool, () => Effect.void)))
        yield* TestClock.adjust("5 seconds")
        return (yield* Fiber.join(checkout)).message
      })
      quotes("docs/errors.md", connect)
    }).pipe(Effect.provide(TestContext.TestContext)))

  it.effect("errors.md and pool.md: PoolClosedError, PoolExhaustedError, PoolCheckoutRejectedError, PoolUsageError", () =>
    Effect.gen(function*() {
      const { pool, scope } = yield* api({ maxWaiters: 1, maxOverflow: 1 })

      // PoolExhaustedError: two lent, one waiting, the next refused
      const a = yield* Pool.checkout(pool)
      const b = yield* Pool.checkout(pool)
      const waiter = yield* Effect.fork(Effect.exit(Pool.use(pool, () => Effect.void)))
      yield* Effect.yieldNow()
      quotes("docs/errors.md", (yield* Effect.flip(Pool.use(pool, () => Effect.void))).message)

      // PoolUsageError: Full (a strict return to a full pool), ReturnedTwice, Foreign, NotLent
      yield* Pool.checkin(pool, a) // goes to the waiter, which returns it: one idle, nobody waiting
      yield* Fiber.join(waiter)
      const full = yield* Effect.flip(Pool.checkin(pool, b, { whenFull: "fail" }))
      quotes("docs/errors.md", full.message)
      quotes("docs/pool.md", full.message)
      yield* Pool.checkin(pool, b)
      quotes("docs/errors.md", (yield* Effect.flip(Pool.checkin(pool, b))).message)
      const stranger = { not: "ours" } as unknown as Memory.MemoryConnection
      quotes("docs/errors.md", (yield* Effect.flip(Pool.invalidate(pool, stranger))).message)
      const idle = yield* Pool.use(pool, (c) => Effect.succeed(c))
      quotes("docs/errors.md", (yield* Effect.flip(Effect.scoped(Pool.detach(pool, idle)))).message)
      const notInstalled = yield* Effect.flip(Pool.policy(pool, Policy.make({ name: "connectLog" })))
      quotes("docs/errors.md", notInstalled.message)

      // PoolCheckoutRejectedError, phase "checkout": maxCheckoutAttempts (3) rejections in a row
      const rejecting = yield* Scope.make()
      yield* Pool.listen(pool, { checkout: () => Effect.fail(new ConnectionRejected({ reason: "maintenance" })) }).pipe(
        Scope.extend(rejecting)
      )
      quotes("docs/errors.md", (yield* Effect.flip(Pool.use(pool, () => Effect.void))).message)
      yield* Scope.close(rejecting, Exit.void)

      // PoolClosedError
      yield* Scope.close(scope, Exit.void)
      quotes("docs/errors.md", (yield* Effect.flip(Pool.use(pool, () => Effect.void))).message)
    }).pipe(Effect.provide(TestContext.TestContext)))

  it.effect("errors.md: PoolCheckoutRejectedError, phase \"connect\"", () =>
    Effect.gen(function*() {
      const versionCheck = Policy.make<Memory.MemoryConnection, Memory.MemoryError>({
        name: "versionCheck",
        onConnect: () => Effect.fail(new ConnectionRejected({ reason: "wrong server version" }))
      })
      const { pool } = yield* api({ policies: [versionCheck] })
      quotes("docs/errors.md", (yield* Effect.flip(Pool.use(pool, () => Effect.void))).message)
    }).pipe(Effect.provide(TestContext.TestContext)))

  it.effect("errors.md: PoolConfigError's lines", () =>
    Effect.gen(function*() {
      const db = yield* Memory.make()
      const driver = db.driver
      const attempts: ReadonlyArray<Record<string, unknown>> = [
        { driver, size: 2.5 },
        { driver, size: 2, min: 3 },
        { driver, shutdownTimeout: "-5 seconds" },
        { driver, timeout: "5 parsecs" },
        {},
        { driver, acquire: Effect.succeed(1) },
        { driver: "pg" },
        { acquire: 42 },
        { driver, policies: "nope" },
        { driver, policies: [Policy.prePing(), 42] },
        { driver, policies: [{ name: "mine", onCheckout: "yes" }] }
      ]
      const lines: Array<string> = []
      for (const options of attempts) {
        const error = yield* Effect.flip(Effect.scoped(Pool.make(options as any)))
        assert.strictEqual(error._tag, "PoolConfigError")
        lines.push(...(error as { readonly problems: ReadonlyArray<string> }).problems)
      }
      const block = all.find((b) => b.page === "docs/errors.md" && b.code.startsWith("size: Expected"))
      assert.isDefined(block, "docs/errors.md lists PoolConfigError's lines in a block")
      assert.deepStrictEqual(block!.code.trimEnd().split("\n"), lines)
      for (const line of lines) checked.add(line)
    }))

  it.effect("pool.md and pool-kinds.md: the status line", () =>
    Effect.gen(function*() {
      const status = (size: number, maxOverflow: number) =>
        Effect.gen(function*() {
          const db = yield* Memory.make()
          const pool = yield* Pool.make({ driver: db.driver, name: "orders", size, maxOverflow, timeout: "30 seconds" })
          yield* Pool.transaction(pool, (c) => db.driver.query(c, "INSERT INTO orders VALUES (1)"))
          return yield* Pool.status(pool)
        }).pipe(Effect.scoped)
      const two = yield* status(2, 1)
      assert.isDefined(all.find((b) => b.page === "docs/pool.md" && b.code === `${two}\n`), `pool.md shows ${two}`)
      checked.add(two)
      // a NullPool with two connections lent: every connection is overflow
      const nullStatus = yield* Effect.gen(function*() {
        const db = yield* Memory.make()
        const pool = yield* Pool.makeNull({ driver: db.driver })
        const leases = [yield* Pool.checkout(pool), yield* Pool.checkout(pool)]
        const status = yield* Pool.status(pool)
        yield* Effect.forEach(leases, (lease) => Pool.checkin(pool, lease))
        return status
      }).pipe(Effect.scoped)
      quotes("docs/pool-kinds.md", nullStatus)
      // the README's example prints on PostgreSQL: test/getting-started.pg.test.ts checks its output block
    }))

  it.effect("events.md: what echo logs", () =>
    Effect.gen(function*() {
      const logs = yield* logsOf(
        Effect.gen(function*() {
          const db = yield* Memory.make()
          const scope = yield* Scope.make()
          const pool = yield* Pool.make({
            driver: db.driver,
            name: "echo",
            size: 2,
            maxOverflow: 0,
            echo: "debug",
            timeout: "1 second",
            policies: []
          }).pipe(Scope.extend(scope))
          const first = yield* Pool.checkout(pool)
          const second = yield* Pool.checkout(pool)
          yield* Pool.invalidate(pool, first)
          yield* Pool.invalidate(pool, second, { soft: true })
          yield* Pool.checkin(pool, first)
          yield* Pool.checkin(pool, second)
          yield* db.failNextConnects(1)
          yield* Effect.flip(Pool.use(pool, () => Effect.void))
          yield* Scope.close(scope, Exit.void)
        }).pipe(Effect.provide(TestContext.TestContext))
      )
      const messages = new Set(logs.map((line) => line.slice(line.indexOf(" ") + 1)))
      for (const message of ["connect", "invalidate", "soft invalidate", "connect failed", "pool closed"]) {
        assert.isTrue(logs.includes(`INFO ${message}`), `echo logs ${message} at info: ${logs.join(", ")}`)
        quotes("docs/events.md", message)
      }
      for (const message of ["checkout", "checkin"]) {
        assert.isTrue(logs.includes(`DEBUG ${message}`), `echo: "debug" logs ${message}: ${logs.join(", ")}`)
        quotes("docs/events.md", message)
      }
      assert.isTrue([...messages].some((m) => /^close \(\w+\)$/.test(m)), `echo logs close (<reason>)`)
      quotes("docs/events.md", "close (<reason>)")
    }))

  it.effect("policies.md: the warning for a return policy that failed, and prePing's rejection reason", () =>
    Effect.gen(function*() {
      const failing = Policy.make<Memory.MemoryConnection, Memory.MemoryError>({
        name: "check",
        onReturn: () => Effect.fail(new ConnectionRejected({ reason: "session changed" }))
      })
      const logs = yield* logsOf(
        Effect.gen(function*() {
          const { pool } = yield* api({ policies: [failing] })
          yield* Pool.use(pool, () => Effect.void)
        }).pipe(Effect.provide(TestContext.TestContext))
      )
      const warning = logs.find((line) => line.startsWith("WARN "))
      assert.isDefined(warning, logs.join(", "))
      quotes("docs/policies.md", warning!.slice("WARN ".length))

      const rejection = yield* Effect.gen(function*() {
        const { db, pool } = yield* api({ policies: [Policy.prePing({ skipWithin: 0 })] })
        yield* Pool.use(pool, () => Effect.void)
        yield* db.failNextQueries(1)
        return yield* Effect.flip(Pool.use(pool, () => Effect.void))
      }).pipe(Effect.provide(TestContext.TestContext))
      assert.strictEqual(rejection._tag, "PoolCheckoutRejectedError")
      const reason = (rejection as { readonly cause: ConnectionRejected }).cause.reason
      quotes("docs/policies.md", `reason: "${reason}"`)
    }))

  it("every `Pool \"...\"` message and status line a page quotes is one checked here", () => {
    const prose = (page: string) => {
      const kept = text(page).split("\n")
      for (const block of all.filter((b) => b.page === page)) {
        const end = block.line + block.code.split("\n").length - 1
        for (let i = block.line - 1; i < end && i < kept.length; i++) kept[i] = ""
      }
      return kept.join("\n")
    }
    const unchecked: Array<string> = []
    for (const page of pages()) {
      for (const [, span] of prose(page).matchAll(/`(Pool "[^`]*|Pool size: [^`]*)`/g)) {
        if (!checked.has(span!)) unchecked.push(`${page}: ${span}`)
      }
    }
    assert.deepStrictEqual(unchecked, [], "quote these messages from a test in test/docs.messages.test.ts")
  })
})

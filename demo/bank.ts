/**
 * The workload: bank transfers between accounts, each one a transaction through the pool (`Pool.transaction`).
 *
 * A transfer reads the two balances (on PostgreSQL with `SELECT ... FOR UPDATE`, both rows locked in id order so two
 * transfers never deadlock; on SQLite the driver's `BEGIN IMMEDIATE` takes the write lock), moves the amount when
 * the source can pay it (never below zero: otherwise it is declined) and writes a ledger row keyed by the transfer's
 * id. A transient failure (a lost connection, `SQLITE_BUSY`, a serialization failure, a pool timeout, an open
 * circuit breaker) is retried on an Effect `Schedule`; the ledger row makes a retry after a `COMMIT` whose outcome
 * was unknown safe: it finds its row and stops. The tally counts every outcome.
 */
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import * as Schedule from "effect/Schedule"
import type { Driver, Row } from "../src/Driver.js"
import { PgError } from "../src/Driver/Pg.js"
import { SqliteError } from "../src/Driver/Sqlite.js"
import * as Pool from "../src/Pool.js"
import { PoolTimeoutError, PoolUnavailableError } from "../src/PoolError.js"

/** Accounts in the bank, and the balance each starts with. */
export const ACCOUNTS = 100
export const OPENING_BALANCE = 1_000
/** A transfer moves 1 to this much. */
export const MAX_AMOUNT = 200

/** How long a transfer's own work takes, inside its transaction. */
export const APPLICATION_WORK = Duration.millis(1)

/** The statements of one dialect (the placeholders and the locking differ). */
export interface Statements {
  readonly setup: ReadonlyArray<string>
  readonly open: string
  readonly seen: string
  readonly lock: string
  readonly debit: string
  readonly credit: string
  readonly record: string
  readonly totals: string
  readonly ledger: string
}

/** SQLite: `?` placeholders; `BEGIN IMMEDIATE` (the driver's default) already holds the write lock. */
export const sqliteStatements: Statements = {
  setup: [
    "CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))",
    "CREATE TABLE transfers (id INTEGER PRIMARY KEY, from_id INTEGER NOT NULL, to_id INTEGER NOT NULL, " +
    "amount INTEGER NOT NULL)"
  ],
  open: "INSERT INTO accounts (id, balance) VALUES (?, ?)",
  seen: "SELECT 1 AS seen FROM transfers WHERE id = ?",
  lock: "SELECT id, balance FROM accounts WHERE id IN (?, ?) ORDER BY id",
  debit: "UPDATE accounts SET balance = balance - ? WHERE id = ?",
  credit: "UPDATE accounts SET balance = balance + ? WHERE id = ?",
  record: "INSERT INTO transfers (id, from_id, to_id, amount) VALUES (?, ?, ?, ?)",
  totals: "SELECT COUNT(*) AS accounts, SUM(balance) AS total, MIN(balance) AS lowest FROM accounts",
  ledger: "SELECT COUNT(*) AS transfers FROM transfers"
}

/** PostgreSQL: `$n` placeholders, the tables in the run's own schema, both rows locked in id order. */
export const pgStatements = (schema: string): Statements => ({
  setup: [
    `CREATE SCHEMA ${schema}`,
    `CREATE TABLE ${schema}.accounts (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))`,
    `CREATE TABLE ${schema}.transfers (id bigint PRIMARY KEY, from_id int NOT NULL, to_id int NOT NULL, ` +
    "amount bigint NOT NULL)"
  ],
  open: `INSERT INTO ${schema}.accounts (id, balance) VALUES ($1, $2)`,
  seen: `SELECT 1 AS seen FROM ${schema}.transfers WHERE id = $1`,
  lock: `SELECT id, balance FROM ${schema}.accounts WHERE id IN ($1, $2) ORDER BY id FOR UPDATE`,
  debit: `UPDATE ${schema}.accounts SET balance = balance - $1 WHERE id = $2`,
  credit: `UPDATE ${schema}.accounts SET balance = balance + $1 WHERE id = $2`,
  record: `INSERT INTO ${schema}.transfers (id, from_id, to_id, amount) VALUES ($1, $2, $3, $4)`,
  totals: `SELECT COUNT(*) AS accounts, SUM(balance) AS total, MIN(balance) AS lowest FROM ${schema}.accounts`,
  ledger: `SELECT COUNT(*) AS transfers FROM ${schema}.transfers`
})

/** A bank: a pool, its driver, the statements of its dialect. */
export interface Bank<C, E> {
  readonly pool: Pool.Pool<C, E>
  readonly driver: Driver<C, E>
  readonly statements: Statements
}

/** Every outcome of the run so far. Counters only go up; the view and the report read them. */
export class Tally {
  /** Transfers started. Each ends as exactly one of committed, declined, failed or interrupted. */
  attempted = 0
  committed = 0
  /** The source could not pay: rolled back, nothing moved. */
  declined = 0
  /** Gave up: a failure that is not transient, or still failing when the retries ran out. */
  failed = 0
  /** Cut short by the end of the run (only when the workers did not drain in time). */
  interrupted = 0
  /** Attempts after the first, over all transfers. */
  retries = 0
  /** Transfers that needed at least one retry. */
  retriedTransfers = 0
  /** Retries that found their ledger row: the earlier attempt's COMMIT had gone through after all. */
  alreadyCommitted = 0
  /** Failed attempts, by kind. */
  readonly errors = new Map<string, number>()
  /** Called on every commit (the fault log uses it to time recoveries). */
  onCommit: () => void = () => {}

  recordError(kind: string): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1)
  }
}

/** What a failed attempt was, and whether it is worth another. */
export interface ErrorKind {
  readonly kind: string
  readonly transient: boolean
}

/** Classifies the failure of one attempt. */
export const classify = (error: unknown, isDisconnect: (error: unknown) => boolean): ErrorKind => {
  if (error instanceof PoolTimeoutError) return { kind: "pool timeout", transient: true }
  if (error instanceof PoolUnavailableError) return { kind: "breaker open", transient: true }
  if (error instanceof PgError) {
    if (error.reason === "CommitOutcomeUnknown") return { kind: "commit outcome unknown", transient: true }
    if (error.reason === "ConnectFailed" || error.reason === "Timeout" && error.operation === "connect") {
      return { kind: "connect failed", transient: true }
    }
    if (error.code === "40001") return { kind: "serialization failure", transient: true }
    if (error.code === "40P01") return { kind: "deadlock", transient: true }
  }
  if (error instanceof SqliteError && error.reason === "Busy") return { kind: "busy", transient: true }
  if (isDisconnect(error)) return { kind: "lost connection", transient: true }
  const tag = typeof error === "object" && error !== null && "_tag" in error ? String(error._tag) : "error"
  return {
    kind: `${tag}${error instanceof PgError || error instanceof SqliteError ? ` ${error.reason}` : ""}`,
    transient: false
  }
}

/**
 * The retry schedule: 10 ms doubling, each delay at most 400 ms, jittered, 10 retries at most (about 3 seconds in
 * all, longer than a fast restart of PostgreSQL).
 */
export const retrySchedule = Schedule.exponential(Duration.millis(10)).pipe(
  Schedule.union(Schedule.spaced(Duration.millis(400))),
  Schedule.jittered,
  Schedule.intersect(Schedule.recurs(10))
)

type Outcome = "committed" | "declined" | "alreadyCommitted"

interface Transfer {
  readonly id: number
  readonly from: number
  readonly to: number
  readonly amount: number
}

/** One attempt of a transfer: one transaction. */
const attempt = <C, E>(bank: Bank<C, E>, transfer: Transfer) =>
  Pool.transaction(bank.pool, (connection) =>
    Effect.gen(function*() {
      const s = bank.statements
      const query = (sql: string, params: ReadonlyArray<unknown>) => bank.driver.query(connection, sql, params)
      if ((yield* query(s.seen, [transfer.id])).length > 0) return "alreadyCommitted" as Outcome
      const rows: ReadonlyArray<Row> = yield* query(s.lock, [
        Math.min(transfer.from, transfer.to),
        Math.max(transfer.from, transfer.to)
      ])
      // the application's own work between reading and writing, as a real service would do (a call out, a check):
      // the transaction and its connection are held meanwhile, so the pool is busy and checkouts queue
      yield* Effect.sleep(APPLICATION_WORK)
      const source = rows.find((row) => Number(row["id"]) === transfer.from)
      if (source === undefined || Number(source["balance"]) < transfer.amount) return "declined" as Outcome
      yield* query(s.debit, [transfer.amount, transfer.from])
      yield* query(s.credit, [transfer.amount, transfer.to])
      yield* query(s.record, [transfer.id, transfer.from, transfer.to, transfer.amount])
      return "committed" as Outcome
    }))

/** One transfer, retried while it fails transiently; every outcome lands in the tally. */
export const transfer = <C, E>(bank: Bank<C, E>, tally: Tally, transfer: Transfer): Effect.Effect<void> => {
  let attempts = 0
  return Effect.suspend(() => {
    if (attempts++ === 0) tally.attempted++
    return attempt(bank, transfer)
  }).pipe(
    Effect.tapError((error) => Effect.sync(() => tally.recordError(classify(error, bank.driver.isDisconnect).kind))),
    Effect.retry({
      schedule: retrySchedule,
      while: (error) => classify(error, bank.driver.isDisconnect).transient
    }),
    Effect.matchEffect({
      onFailure: () => Effect.sync(() => tally.failed++),
      onSuccess: (outcome) =>
        Effect.sync(() => {
          if (outcome === "declined") {
            tally.declined++
            return
          }
          if (outcome === "alreadyCommitted") tally.alreadyCommitted++
          tally.committed++
          tally.onCommit()
        })
    }),
    Effect.onInterrupt(() =>
      Effect.sync(() => {
        if (attempts > 0) tally.interrupted++
      })
    ),
    Effect.ensuring(Effect.sync(() => {
      if (attempts > 1) {
        tally.retries += attempts - 1
        tally.retriedTransfers++
      }
    })),
    Effect.asVoid
  )
}

/** Creates the tables and opens the accounts, in one transaction. */
export const setup = <C, E>(bank: Bank<C, E>) =>
  Pool.transaction(bank.pool, (connection) =>
    Effect.gen(function*() {
      for (const sql of bank.statements.setup) yield* bank.driver.query(connection, sql)
      for (let id = 1; id <= ACCOUNTS; id++) {
        yield* bank.driver.query(connection, bank.statements.open, [id, OPENING_BALANCE])
      }
    }))

/** What the database holds now: read back after the run for the conservation check. */
export interface Totals {
  readonly accounts: number
  readonly total: number
  readonly lowest: number
  readonly ledger: number
}

/** Reads the totals (retried like a transfer: the database may just have come back). */
export const totals = <C, E>(bank: Bank<C, E>) =>
  Pool.use(bank.pool, (connection) =>
    Effect.gen(function*() {
      const [row] = yield* bank.driver.query(connection, bank.statements.totals)
      const [ledger] = yield* bank.driver.query(connection, bank.statements.ledger)
      const totals: Totals = {
        accounts: Number(row?.["accounts"]),
        total: Number(row?.["total"]),
        lowest: Number(row?.["lowest"]),
        ledger: Number(ledger?.["transfers"])
      }
      return totals
    })).pipe(
      Effect.retry({ schedule: retrySchedule, while: (error) => classify(error, bank.driver.isDisconnect).transient })
    )

/**
 * The workers: `concurrency` fibers, each running transfers one after another until `stop` is done, then finishing
 * the one in hand. Transfer ids count up from 1 across all workers.
 */
export const workers = <C, E>(
  bank: Bank<C, E>,
  tally: Tally,
  options: { readonly concurrency: number; readonly stop: Deferred.Deferred<void> }
): Effect.Effect<void> => {
  let nextId = 1
  const one = Effect.gen(function*() {
    const from = yield* Random.nextIntBetween(1, ACCOUNTS + 1)
    const offset = yield* Random.nextIntBetween(1, ACCOUNTS)
    const amount = yield* Random.nextIntBetween(1, MAX_AMOUNT + 1)
    yield* transfer(bank, tally, { id: nextId++, from, to: ((from - 1 + offset) % ACCOUNTS) + 1, amount })
  })
  const worker = one.pipe(Effect.zipRight(Deferred.isDone(options.stop)), Effect.repeat({ until: (done) => done }))
  return Effect.forEach(Array.from({ length: options.concurrency }), () => worker, {
    concurrency: "unbounded",
    discard: true
  })
}

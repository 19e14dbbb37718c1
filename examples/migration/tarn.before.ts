/**
 * The "before" side of docs/migration/tarn.md: tarn pooling better-sqlite3 handles (as knex does with its
 * connections), driven by promise code. Each function is one pair of the page; `examples/migration/tarn.after.ts`
 * computes the same with effect-reservoir. Run it with `npx tsx examples/migration/tarn.before.ts`.
 */
import Database from "better-sqlite3"
import { Pool, TimeoutError } from "tarn"
import * as Bank from "./bank.js"

export class InsufficientFunds extends Error {
  constructor(readonly account: number) {
    super(`account ${account}: insufficient funds`)
  }
}

// --- pair 1: the pool, create / destroy / validate, acquire and release ---

export const makePool = (filename: string): Pool<Database.Database> =>
  new Pool<Database.Database>({
    create: async () => {
      const db = new Database(filename)
      db.pragma("journal_mode = WAL")
      db.pragma("busy_timeout = 5000")
      return db
    },
    destroy: (db) => db.close(),
    validate: (db) => db.open,
    min: 0,
    max: 4,
    acquireTimeoutMillis: 2_000,
    idleTimeoutMillis: 30_000
  })

export const transfer = async (pool: Pool<Database.Database>, { amount, from, to }: Bank.Transfer) => {
  const db = await pool.acquire().promise
  try {
    db.transaction(() => {
      const debited = db
        .prepare("UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ? RETURNING balance")
        .get(amount, from, amount)
      if (debited === undefined) throw new InsufficientFunds(from)
      db.prepare("UPDATE accounts SET balance = balance + ? WHERE id = ?").run(amount, to)
    }).immediate()
  } finally {
    pool.release(db)
  }
}

export const bankTransfers = async (): Promise<Bank.Outcome> => {
  const file = Bank.tempDatabaseFile()
  const pool = makePool(file.filename)
  try {
    const db = await pool.acquire().promise
    try {
      db.exec([Bank.dropAccounts, Bank.createAccounts, Bank.insertAccounts].join(";"))
    } finally {
      pool.release(db)
    }
    const settled = await Promise.allSettled(Bank.transfers.map((t) => transfer(pool, t)))
    const reader = await pool.acquire().promise
    try {
      const rows = reader.prepare(Bank.selectBalances).all() as Array<Record<string, unknown>>
      return Bank.outcome(settled.map((s) => s.status === "fulfilled"), rows)
    } finally {
      pool.release(reader)
    }
  } finally {
    await pool.destroy()
    file.remove()
  }
}

// --- pair 2: a handle that went bad while idle is not lent again ---

export const validation = async (): Promise<{ readonly fresh: boolean; readonly replaced: boolean }> => {
  const file = Bank.tempDatabaseFile()
  const pool = makePool(file.filename)
  try {
    const first = await pool.acquire().promise
    pool.release(first)
    first.close() // something closed the handle behind the pool's back
    const second = await pool.acquire().promise // validate says no: destroyed, and a new one is created
    pool.release(second)
    return { fresh: second.open, replaced: second !== first }
  } finally {
    await pool.destroy()
    file.remove()
  }
}

// --- pair 3: the database cannot be opened ---

export const unreachable = async (): Promise<{ readonly timedOut: boolean; readonly message: string }> => {
  const pool = makePool("/nonexistent/dir/bank.db")
  pool.on("createFail", () => {}) // creates are retried every createRetryIntervalMillis until the acquire times out
  try {
    await pool.acquire().promise
    return { timedOut: false, message: "acquired" }
  } catch (error) {
    // after acquireTimeoutMillis: a TimeoutError carrying the last create failure's message
    return { timedOut: error instanceof TimeoutError, message: (error as Error).message }
  } finally {
    await pool.destroy()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  Promise.all([bankTransfers(), validation(), unreachable()]).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}

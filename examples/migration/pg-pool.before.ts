/**
 * The "before" side of docs/migration/pg-pool.md: node-postgres's pool (`pg.Pool`, which is the pg-pool package),
 * as promise code usually drives it. Each function is one pair of the page; `examples/migration/pg-pool.after.ts`
 * computes the same with effect-reservoir. Run it against a server with
 * `DATABASE_URL=postgres://... npx tsx examples/migration/pg-pool.before.ts`.
 */
import pg from "pg"
import * as Bank from "./bank.js"

export class InsufficientFunds extends Error {
  constructor(readonly account: number) {
    super(`account ${account}: insufficient funds`)
  }
}

// --- pair 1: the pool and its options; pool.query ---

export const makePool = (connectionString: string): pg.Pool => {
  const pool = new pg.Pool({
    connectionString,
    application_name: "bank",
    max: 4,
    idleTimeoutMillis: 10_000,
    connectionTimeoutMillis: 2_000,
    maxUses: 7_500
  })
  // an idle client whose server goes away emits "error" on the pool: with no listener, the process crashes
  pool.on("error", (error) => console.error("idle client error:", error.message))
  return pool
}

// --- pair 2: a transaction on a checked-out client ---

export const transfer = async (pool: pg.Pool, { amount, from, to }: Bank.Transfer): Promise<void> => {
  const client = await pool.connect()
  let broken: Error | undefined
  try {
    await client.query("BEGIN")
    const debited = await client.query(
      "UPDATE accounts SET balance = balance - $1 WHERE id = $2 AND balance >= $1 RETURNING balance",
      [amount, from]
    )
    if (debited.rowCount === 0) throw new InsufficientFunds(from)
    await client.query("UPDATE accounts SET balance = balance + $1 WHERE id = $2", [amount, to])
    await client.query("COMMIT")
  } catch (error) {
    await client.query("ROLLBACK").catch((rollbackError: Error) => {
      broken = rollbackError
    })
    throw error
  } finally {
    // release(error) destroys the client instead of pooling it; a second release() throws
    client.release(broken)
  }
}

export const bankTransfers = async (connectionString: string): Promise<Bank.Outcome> => {
  const pool = makePool(connectionString)
  try {
    await pool.query(Bank.dropAccounts)
    await pool.query(Bank.createAccounts)
    await pool.query(Bank.insertAccounts)
    const settled = await Promise.allSettled(Bank.transfers.map((t) => transfer(pool, t)))
    const { rows } = await pool.query(Bank.selectBalances)
    return Bank.outcome(settled.map((s) => s.status === "fulfilled"), rows)
  } finally {
    await pool.end()
  }
}

// --- pair 3: every client is out, and a checkout waits past connectionTimeoutMillis ---

export const checkoutTimeout = async (connectionString: string): Promise<{ readonly message: string }> => {
  const pool = new pg.Pool({ connectionString, max: 1, connectionTimeoutMillis: 200 })
  const held = await pool.connect()
  try {
    await pool.connect()
    return { message: "no timeout" }
  } catch (error) {
    return { message: (error as Error).message }
  } finally {
    held.release()
    await pool.end()
  }
}

// --- pair 4: the server ends a session while a client holds it ---

export const lostConnection = async (
  connectionString: string
): Promise<{ readonly failed: boolean; readonly recovered: boolean }> => {
  const pool = makePool(connectionString)
  try {
    const client = await pool.connect()
    // a checked-out client has no pool listener: without one of its own, its "error" event crashes the process
    client.on("error", () => {})
    let failed = false
    try {
      await client.query("SELECT pg_terminate_backend(pg_backend_pid())")
    } catch (error) {
      failed = true
      client.release(error as Error)
    }
    const { rows } = await pool.query("SELECT 1 AS ok")
    return { failed, recovered: rows[0]?.ok === 1 }
  } finally {
    await pool.end()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const url = process.env["DATABASE_URL"]
  if (url === undefined) {
    console.error("set DATABASE_URL=postgres://user@host:port/database")
    process.exit(1)
  }
  Promise.all([bankTransfers(url), checkoutTimeout(url), lostConnection(url)]).then(console.log, (error) => {
    console.error(error)
    process.exit(1)
  })
}

/**
 * The workload every migration pair runs, before and after: three accounts, four transfers run at once, one of
 * which must fail whatever the order (no account ever holds 500). Plain data and SQL that PostgreSQL and SQLite
 * both read, so that the "before" code (promises, no Effect) can use it too; and a throwaway SQLite file.
 */
import * as Effect from "effect/Effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export interface Account {
  readonly id: number
  readonly owner: string
  readonly balance: number
}

export interface Transfer {
  readonly from: number
  readonly to: number
  readonly amount: number
}

/** What every pair answers: the same on both sides. */
export interface Outcome {
  readonly committed: number
  readonly failed: number
  readonly balances: ReadonlyArray<readonly [owner: string, balance: number]>
}

export const accounts: ReadonlyArray<Account> = [
  { id: 1, owner: "ada", balance: 100 },
  { id: 2, owner: "grace", balance: 50 },
  { id: 3, owner: "linus", balance: 0 }
]

/** Each succeeds in any order, except the last, which never can. */
export const transfers: ReadonlyArray<Transfer> = [
  { from: 1, to: 2, amount: 30 },
  { from: 2, to: 3, amount: 20 },
  { from: 1, to: 3, amount: 10 },
  { from: 3, to: 1, amount: 500 }
]

export const dropAccounts = "DROP TABLE IF EXISTS accounts"

export const createAccounts =
  "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL CHECK (balance >= 0))"

/** The seed rows as one statement with the values inlined (they are constants, not input). */
export const insertAccounts = `INSERT INTO accounts (id, owner, balance) VALUES ${
  accounts.map((a) => `(${a.id}, '${a.owner}', ${a.balance})`).join(", ")
}`

export const selectBalances = "SELECT owner, balance FROM accounts ORDER BY id"

/** The outcome from the settled transfers and the rows of `selectBalances`. */
export const outcome = (
  succeeded: ReadonlyArray<boolean>,
  rows: ReadonlyArray<Readonly<Record<string, unknown>>>
): Outcome => ({
  committed: succeeded.filter((ok) => ok).length,
  failed: succeeded.filter((ok) => !ok).length,
  balances: rows.map((row) => [String(row["owner"]), Number(row["balance"])] as const)
})

/** A throwaway SQLite file, for promise code: `remove()` deletes it. */
export const tempDatabaseFile = (): { readonly filename: string; readonly remove: () => void } => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "reservoir-migration-"))
  return { filename: path.join(dir, "bank.db"), remove: () => fs.rmSync(dir, { recursive: true, force: true }) }
}

/** The same for Effect code: a fresh file for the life of the scope. It stands in for your database's URL. */
export const databaseFile = Effect.map(
  Effect.acquireRelease(Effect.sync(tempDatabaseFile), (file) => Effect.sync(file.remove)),
  (file) => file.filename
)

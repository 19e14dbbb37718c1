/**
 * The record a pool keeps for each connection it opens: identity, timestamps, use count, generation, labels and a
 * `properties` store that lives exactly as long as the connection (SQLAlchemy's `_ConnectionRecord`).
 *
 * Listeners, policies and the driver's `connect` all receive the record.
 *
 * @since 0.1.0
 */

/**
 * @since 0.1.0
 * @category models
 */
export interface ConnectionRecord {
  /** A number unique within the pool, in order of creation. */
  readonly id: number
  /** The name of the pool that opened the connection. */
  readonly pool: string
  /** When the connect started, in epoch milliseconds from the pool's `Clock`. */
  readonly createdAt: number
  /** When the connection was last checked out, in epoch milliseconds (equal to `createdAt` before its first use). */
  readonly lastUsedAt: number
  /** When the connection last came back to the pool, in epoch milliseconds (equal to `createdAt` before that). */
  readonly lastReturnedAt: number
  /** When a policy last validated the connection (pre-ping, keepalive), in epoch milliseconds; `0` for never. */
  readonly lastValidatedAt: number
  /** How many times the connection has been checked out. */
  readonly uses: number
  /** The pool generation the connection was opened in; `Pool.invalidateAll` starts a new one. */
  readonly generation: number
  /** The pool's labels (Spanner's session labels). */
  readonly labels: Readonly<Record<string, string>>
  /**
   * A store for policies and listeners, scoped to the life of this connection: it is empty when the connection
   * opens and dropped when it closes.
   */
  readonly properties: Map<string, unknown>
}

/**
 * A record for a connection opened outside any pool: a driver's health check, or a test calling a driver's
 * `connect` directly.
 *
 * @since 0.1.0
 * @category constructors
 */
export const standalone = (pool: string, id: number = 0): ConnectionRecord => ({
  id,
  pool,
  createdAt: 0,
  lastUsedAt: 0,
  lastReturnedAt: 0,
  lastValidatedAt: 0,
  uses: 0,
  generation: 0,
  labels: {},
  properties: new Map()
})

/** The slice of pg-pool's API the benchmarks use (pg-pool ships no types; `@types/pg` types it only through `pg`). */
declare module "pg-pool" {
  interface PgPoolOptions {
    readonly Client?: new(options: unknown) => unknown
    readonly max?: number
    readonly min?: number
    readonly idleTimeoutMillis?: number
  }
  class PgPool {
    constructor(options?: PgPoolOptions)
    connect(): Promise<{ release: (error?: unknown) => void }>
    end(): Promise<void>
    readonly totalCount: number
    readonly idleCount: number
    readonly waitingCount: number
  }
  export default PgPool
}

/**
 * One benchmark job in a fresh process: `node --expose-gc worker '<job json>'`. Prints one JSON object on stdout
 * and exits. Spawned by `bench/run.ts`; see `docs/benchmarks.md` for what is measured and how.
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as EPool from "effect/Pool"
import * as Scope from "effect/Scope"
import * as genericPool from "generic-pool"
import * as fs from "node:fs"
import PgPool from "pg-pool"
import * as tarn from "tarn"
import * as RPolicy from "../src/Policy.js"
import * as RPool from "../src/Pool.js"
import * as Baseline from "./baseline.js"
import { Handoff } from "./handoff.js"

/** A checkout-and-return cycle job, or a heap-per-parked-waiter job. */
export type Job =
  | {
    readonly mode: "throughput"
    readonly pool: string
    readonly n: number
    readonly m: number
    readonly hold: "none" | "tick"
    readonly warmupMs: number
    readonly measureMs: number
  }
  | { readonly mode: "heap"; readonly pool: string; readonly waiters: number }

// ---------------------------------------------------------------------------------------------------------------
// subjects: what a borrower loop drives
// ---------------------------------------------------------------------------------------------------------------

/**
 * One checkout-use-return. `enter` is called in the same synchronous step that hands the checkout to the pool (inside
 * an `Effect.suspend` whose result is the pool's checkout effect), after any scope the form needs is open: that is
 * where a request takes its sequence number and start time, the same way for every pool, so fiber preemption while
 * `Effect.scoped` sets up cannot reorder arrivals in the count.
 */
type Cycle = (enter: () => void, f: (resource: unknown) => Effect.Effect<void>) => Effect.Effect<void, unknown>

const noop = (): void => {}

type Subject =
  | { readonly kind: "effect"; readonly cycle: Cycle; readonly close: () => Promise<void> }
  | {
    readonly kind: "promise"
    readonly acquire: () => Promise<unknown>
    readonly release: (resource: unknown) => void
    readonly close: () => Promise<void>
  }

/** pg-pool's `Client` option: a connection that does nothing. */
class FakeClient {
  _queryable = true
  _ending = false
  connect(callback?: (error: Error | null) => void): Promise<void> | void {
    if (callback !== undefined) return callback(null)
    return Promise.resolve()
  }
  end(callback?: () => void): Promise<void> | void {
    this._ending = true
    if (callback !== undefined) return callback()
    return Promise.resolve()
  }
  query(): Promise<{ rows: Array<unknown> }> {
    return Promise.resolve({ rows: [] })
  }
  on(): this {
    return this
  }
  once(): this {
    return this
  }
  removeListener(): this {
    return this
  }
  ref(): void {}
  unref(): void {}
}

const range = (n: number): Array<number> => Array.from({ length: n }, (_, i) => i)

const resolved: Promise<void> = Promise.resolve()

const inScope = async <A>(make: Effect.Effect<A, unknown, Scope.Scope>) => {
  const scope = Effect.runSync(Scope.make())
  const value = await Effect.runPromise(Scope.extend(make, scope))
  return { value, close: () => Effect.runPromise(Scope.close(scope, Exit.void)) }
}

const warmEffect = (cycle: Cycle, m: number) =>
  Effect.runPromise(
    Effect.scoped(Effect.forEach(range(m), () => Effect.scoped(cycle(noop, () => Effect.void)), {
      concurrency: "unbounded",
      discard: true
    }))
  )

const warmPromise = async (acquire: () => Promise<unknown>, release: (r: unknown) => void, m: number) => {
  const resources = await Promise.all(range(m).map(() => acquire()))
  for (const r of resources) release(r)
}

/** The library's `Pool` and `Policy` modules: this checkout's `src/`, or the baseline's (`bench/baseline.ts`). */
interface Library {
  readonly Pool: typeof RPool
  readonly Policy: typeof RPolicy
}

/**
 * An effect-reservoir subject over `library`; the form is the name's last part: `use` (`Pool.use`), `get`
 * (`Pool.get` in `Effect.scoped`) or `use+policies` (`Pool.use` with the policies a database pool runs with).
 */
const reservoir = async ({ Policy, Pool }: Library, name: string, m: number): Promise<Subject> => {
  const form = name.slice(name.indexOf("/") + 1)
  const { close, value: pool } = await inScope(Pool.make({
    acquire: Effect.acquireRelease(Effect.succeed({}), () => Effect.void),
    size: m,
    maxOverflow: 0,
    min: m,
    timeout: Infinity, // the string "Infinity" is refused by src/internal/config.ts (see report)
    name: `bench-${name}`,
    // the default policies of a database pool (a pool from a bare `acquire` has none unless listed): on a no-op
    // resource the reset has nothing to reset, as after autocommit work, and pre-ping skips connections used within
    // its 500 ms window, as under load; a baseline older than `Policy.defaults` gets the list it ran with
    policies: form === "use+policies" ?
      ((Policy as Partial<typeof Policy>).defaults?.() ??
        [Policy.recycle("30 minutes"), Policy.maxUses(1_000_000_000), Policy.resetOnReturn("rollback")]) :
      []
  }))
  for (let i = 0; i < 1000; i++) {
    const stats = await Effect.runPromise(Pool.stats(pool))
    if (stats.open === m) break
    await new Promise((r) => setTimeout(r, 1))
  }
  const cycle: Cycle = form !== "get" ?
    (enter, f) =>
      Effect.suspend(() => {
        enter()
        return Pool.use(pool, f)
      }) :
    (enter, f) =>
      Effect.scoped(Effect.flatMap(
        Effect.suspend(() => {
          enter()
          return Pool.get(pool)
        }),
        f
      ))
  return { kind: "effect", cycle, close }
}

/**
 * A promise pool called from fibers, as an Effect program calls one: `Effect.acquireUseRelease` of
 * `Effect.promise(acquire)`, the work, and `Effect.sync(release)` (every release here takes effect at once:
 * generic-pool's returns a promise already settled, which its promise-caller subject does not await either).
 * The request enters the pool in the `Effect.promise` thunk, on the line before `acquire()`.
 */
const fromFibers = (
  acquire: () => Promise<unknown>,
  release: (resource: unknown) => void,
  close: () => Promise<void>
): Subject => ({
  kind: "effect",
  cycle: (enter, f) =>
    Effect.acquireUseRelease(
      Effect.promise(() => {
        enter()
        return acquire()
      }),
      f,
      (resource) =>
        Effect.sync(() => {
          release(resource)
        })
    ),
  close
})

/** The promise pools, each warmed to M open resources: their own acquire / release API and how to close them. */
const promisePool = async (name: string, m: number): Promise<{
  readonly acquire: () => Promise<unknown>
  readonly release: (resource: unknown) => void
  readonly close: () => Promise<void>
}> => {
  switch (name) {
    case "generic-pool": {
      const pool = genericPool.createPool({ create: () => Promise.resolve({}), destroy: () => Promise.resolve() }, {
        max: m,
        min: m
      })
      await pool.ready()
      const acquire = () => pool.acquire()
      const release = (r: unknown) => {
        void pool.release(r as object)
      }
      await warmPromise(acquire, release, m)
      return { acquire, release, close: () => pool.drain().then(() => pool.clear()) }
    }
    case "tarn": {
      const pool = new tarn.Pool<object>({ create: () => Promise.resolve({}), destroy: () => {}, min: m, max: m })
      const acquire = () => pool.acquire().promise
      const release = (r: unknown) => {
        pool.release(r as object)
      }
      await warmPromise(acquire, release, m)
      return { acquire, release, close: () => pool.destroy().then(() => {}) }
    }
    case "pg-pool": {
      const pool = new PgPool({ Client: FakeClient, max: m, min: m })
      const acquire = () => pool.connect()
      const release = (client: unknown) => (client as { release: () => void }).release()
      await warmPromise(acquire, release, m)
      return { acquire, release, close: () => pool.end() }
    }
  }
  throw new Error(`unknown promise pool ${name}`)
}

const makeSubject = async (name: string, m: number): Promise<Subject> => {
  switch (name) {
    case "effect-reservoir/use":
    case "effect-reservoir/use+policies":
    case "effect-reservoir/get":
      return reservoir({ Pool: RPool, Policy: RPolicy }, name, m)
    case "baseline/use":
    case "baseline/use+policies":
    case "baseline/get":
      return reservoir(Baseline, name, m)
    case "effect/Pool":
    case "effect/Pool-ttl": {
      const acquire = Effect.succeed({})
      const { close, value: pool } = await inScope(
        name === "effect/Pool" ?
          EPool.make({ acquire, size: m }) :
          EPool.makeWithTTL({ acquire, min: m, max: m, timeToLive: "1 minute" })
      )
      const cycle: Cycle = (enter, f) =>
        Effect.scoped(Effect.flatMap(
          Effect.suspend(() => {
            enter()
            return EPool.get(pool)
          }),
          f
        ))
      await warmEffect(cycle, m)
      return { kind: "effect", cycle, close }
    }
    case "generic-pool":
    case "tarn":
    case "pg-pool": {
      const { acquire, close, release } = await promisePool(name, m)
      return { kind: "promise", acquire, release, close }
    }
    case "effect+generic-pool":
    case "effect+tarn":
    case "effect+pg-pool": {
      const { acquire, close, release } = await promisePool(name.slice("effect+".length), m)
      return fromFibers(acquire, release, close)
    }
    case "floor/await":
      return { kind: "promise", acquire: () => resolved, release: () => {}, close: () => resolved }
    case "floor/acquireUseRelease":
      return {
        kind: "effect",
        cycle: (enter, f) =>
          Effect.acquireUseRelease(
            Effect.sync(() => {
              enter()
            }),
            f,
            () => Effect.void
          ),
        close: () => resolved
      }
    case "floor/scoped":
      return {
        kind: "effect",
        cycle: (enter, f) =>
          Effect.scoped(Effect.suspend(() => {
            enter()
            return f(undefined)
          })),
        close: () => resolved
      }
    case "floor/semaphore": {
      // Effect's own cheapest contended primitive: M permits, N fibers; what parking a fiber costs in Effect
      const semaphore = Effect.runSync(Effect.makeSemaphore(m))
      return {
        kind: "effect",
        cycle: (enter, f) =>
          Effect.suspend(() => {
            enter()
            return semaphore.withPermits(1)(f(undefined))
          }),
        close: () => resolved
      }
    }
    case "floor/handoff":
    case "floor/handoff-masked":
    case "floor/scoped-handoff": {
      const handoff = new Handoff(m)
      if (name === "floor/handoff-masked") {
        return {
          kind: "effect",
          cycle: (enter, f) =>
            Effect.uninterruptibleMask((restore) =>
              Effect.suspend(() => {
                enter()
                return Effect.matchCauseEffect(restore(Effect.flatMap(handoff.take, () => f(undefined))), {
                  onSuccess: () => handoff.give,
                  onFailure: (cause) => Effect.zipRight(handoff.give, Effect.failCause(cause))
                })
              })
            ),
          close: () => resolved
        }
      }
      if (name === "floor/handoff") {
        return {
          kind: "effect",
          cycle: (enter, f) =>
            Effect.suspend(() => {
              enter()
              return Effect.flatMap(handoff.take, () => Effect.zipRight(f(undefined), handoff.give))
            }),
          close: () => resolved
        }
      }
      return {
        kind: "effect",
        cycle: (enter, f) =>
          Effect.scoped(Effect.flatMap(Effect.scope, (scope) => {
            enter()
            return Effect.flatMap(
              handoff.take,
              () => Effect.zipRight(Scope.addFinalizer(scope, handoff.give), f(undefined))
            )
          })),
        close: () => resolved
      }
    }
    case "floor/fiber":
      return { kind: "effect", cycle: () => Effect.async<void>(() => {}), close: () => resolved }
  }
  throw new Error(`unknown pool ${name}`)
}

// ---------------------------------------------------------------------------------------------------------------
// the recorder: phases, waits, grant order
// ---------------------------------------------------------------------------------------------------------------

const SAMPLES = 1 << 20
const RING = 1 << 21
const RING_MASK = RING - 1

/** Lehmer RNG, so reservoir sampling costs the same in every process. */
let seed = 0x2545f491
const random = () => (seed = (seed * 48271) % 0x7fffffff) / 0x7fffffff

class Recorder {
  /** 0: warm-up, 1: measuring, 2: done */
  phase = 0
  /** Set when the start gate opens: the warm-up runs from then. */
  startAt = 0n
  /** Set when the window opens: it lasts `measureMs` from then. */
  endAt = 0n
  readonly warmupNs: bigint
  readonly measureNs: bigint
  cpuStart: NodeJS.CpuUsage = { user: 0, system: 0 }
  wallStart = 0n
  ops = 0
  readonly waits = new Float64Array(SAMPLES)
  stored = 0
  seen = 0
  maxWait = 0
  nextSeq = 0
  readonly pending = new Uint8Array(RING)
  /** Per request: whether every resource was lent when it was made, i.e. whether it had to wait. */
  readonly mustWait = new Uint8Array(RING)
  /** Resources granted and not yet returned. */
  held = 0
  /** The oldest request not yet granted (or `nextSeq` when there is none). */
  lowest = 0
  inversions = 0
  constructor(
    warmupMs: number,
    measureMs: number,
    readonly resources: number,
    readonly onDone: () => void
  ) {
    this.warmupNs = BigInt(Math.round(warmupMs * 1e6))
    this.measureNs = BigInt(Math.round(measureMs * 1e6))
  }

  /** The start gate opened (every borrower is running): the warm-up starts now. */
  open(now: bigint): void {
    this.startAt = now + this.warmupNs
  }

  /** Called by a borrower before each request; `false` once the measurement is over. */
  begin(now: bigint): boolean {
    if (this.phase === 0 && now >= this.startAt) this.startMeasuring(now)
    else if (this.phase === 1 && now >= this.endAt) this.onDone()
    return this.phase !== 2
  }

  startMeasuring(now: bigint): void {
    this.phase = 1
    this.cpuStart = process.cpuUsage()
    this.wallStart = now
    this.endAt = now + this.measureNs
  }

  /** When each request in the ring was made (`hrtime` ns), for the age of the oldest still waiting at the end. */
  readonly requestedAt = new Float64Array(RING)

  request(t0: bigint): number {
    const seq = this.nextSeq++
    this.requestedAt[seq & RING_MASK] = Number(t0)
    if (seq - this.lowest >= RING) {
      // a request older than RING grants is still waiting: count it as an inversion and stop tracking it
      this.pending[this.lowest & RING_MASK] = 0
      this.inversions++
      this.advance()
    }
    this.pending[seq & RING_MASK] = 1
    this.mustWait[seq & RING_MASK] = this.held >= this.resources ? 1 : 0
    return seq
  }

  /**
   * How long the oldest request still waiting has waited, ns (0 when none waits): a borrower a pool starves for the
   * whole window is never granted, so without this it would be missing from the maximum wait.
   */
  oldestWaiting(now: bigint): number {
    this.advance()
    return this.lowest < this.nextSeq ? Number(now) - this.requestedAt[this.lowest & RING_MASK] : 0
  }

  advance(): void {
    while (this.lowest < this.nextSeq && this.pending[this.lowest & RING_MASK] === 0) this.lowest++
  }

  /** A request was granted: `seq` is its sequence number, `t0` when it was made. */
  grant(seq: number, t0: bigint): void {
    this.pending[seq & RING_MASK] = 0
    this.held++
    // overtaking a request that is still waiting for a resource (not one still on its way to the pool)
    const inverted = seq !== this.lowest && this.mustWait[this.lowest & RING_MASK] === 1
    if (seq === this.lowest) this.advance()
    if (this.phase !== 1) return
    if (inverted) this.inversions++
    this.ops++
    const wait = Number(process.hrtime.bigint() - t0)
    if (wait > this.maxWait) this.maxWait = wait
    const seen = this.seen++
    if (this.stored < SAMPLES) {
      this.waits[this.stored++] = wait
    } else {
      const j = Math.floor(random() * (seen + 1))
      if (j < SAMPLES) this.waits[j] = wait
    }
  }
}

const quantile = (sorted: Float64Array, q: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]

const print = (value: unknown): void => {
  fs.writeSync(1, JSON.stringify(value) + "\n")
}

// ---------------------------------------------------------------------------------------------------------------
// throughput
// ---------------------------------------------------------------------------------------------------------------

const effectTick: Effect.Effect<void> = Effect.async<void>((resume) => {
  setImmediate(() => resume(Effect.void))
})
const promiseTick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

const throughput = async (job: Extract<Job, { mode: "throughput" }>): Promise<void> => {
  const subject = await makeSubject(job.pool, job.m)
  const tick = job.hold === "tick"
  let finished = false
  const finish = () => {
    if (finished) return
    finished = true
    const cpu = process.cpuUsage(recorder.cpuStart)
    const end = process.hrtime.bigint()
    const wallNs = Number(end - recorder.wallStart)
    const oldestWaiting = recorder.oldestWaiting(end)
    recorder.phase = 2
    const sorted = recorder.waits.slice(0, recorder.stored).sort()
    const ops = recorder.ops
    print({
      pool: job.pool,
      n: job.n,
      m: job.m,
      hold: job.hold,
      opsPerSec: ops / (wallNs / 1e9),
      cpuNsPerOp: ops === 0 ? 0 : ((cpu.user + cpu.system) * 1000) / ops,
      p50WaitUs: quantile(sorted, 0.5) / 1000,
      p99WaitUs: quantile(sorted, 0.99) / 1000,
      // granted or still waiting when the window closed, whichever waited longer
      maxWaitUs: Math.max(recorder.maxWait, oldestWaiting) / 1000,
      oldestWaitingUs: oldestWaiting / 1000,
      fifoInversions: recorder.inversions,
      ops,
      wallMs: wallNs / 1e6
    })
    // borrowers still parked in a slow pool would take long to drain: the process ends here
    process.exit(0)
  }
  const recorder = new Recorder(
    job.warmupMs,
    job.measureMs,
    job.pool.startsWith("floor/") && !job.pool.includes("handoff") ? Infinity : job.m,
    finish
  )
  /**
   * The start gate: every borrower parks here until all N are running, then all go at once. Without it, a borrower
   * that never parks (any pool or floor under hold none with a free resource) runs on alone: Effect's scheduler
   * then never gets back to the `Effect.forEach` that starts the other N − 1 fibers (seen: one fiber of ten started
   * after 3 s), and "N borrowers" would measure one.
   */
  let arrived = 0
  const atGate: Array<() => void> = []
  const arrive = (go: () => void) => {
    arrived++
    if (arrived < job.n) return void atGate.push(go)
    recorder.open(process.hrtime.bigint())
    // a timer ends the run when every borrower is parked; a borrower that sees the clock ends it when timers starve
    setTimeout(() => {
      if (recorder.phase === 0) recorder.startMeasuring(process.hrtime.bigint())
      const check = () => {
        if (process.hrtime.bigint() >= recorder.endAt) finish()
        else setTimeout(check, 1)
      }
      check()
    }, job.warmupMs + job.measureMs).unref()
    for (const waiting of atGate) waiting()
    atGate.length = 0
    go()
  }
  const loops: Array<Promise<void>> = []
  if (subject.kind === "effect") {
    const cycle = subject.cycle
    // one borrower: its request's sequence number and start time are taken by `enter`, as it reaches the pool
    const borrower = (): Effect.Effect<void, unknown> => {
      let seq = 0
      let t0 = 0n
      const enter = () => {
        t0 = process.hrtime.bigint()
        seq = recorder.request(t0)
      }
      const use = () => {
        recorder.grant(seq, t0)
        return tick ? effectTick : Effect.void
      }
      const after = Effect.suspend(() => {
        recorder.held--
        return loop
      })
      const loop: Effect.Effect<void, unknown> = Effect.suspend(() =>
        recorder.begin(process.hrtime.bigint()) ? Effect.zipRight(cycle(enter, use), after) : Effect.void
      )
      return Effect.zipRight(Effect.async<void>((resume) => arrive(() => resume(Effect.void))), loop)
    }
    loops.push(Effect.runPromise(Effect.forEach(range(job.n), borrower, { concurrency: "unbounded", discard: true })))
  } else {
    const { acquire, release } = subject
    const loop = async () => {
      await new Promise<void>((go) => arrive(go))
      for (;;) {
        const t0 = process.hrtime.bigint()
        if (!recorder.begin(t0)) return
        const seq = recorder.request(t0)
        const resource = await acquire()
        recorder.grant(seq, t0)
        if (tick) await promiseTick()
        recorder.held--
        release(resource)
      }
    }
    for (let i = 0; i < job.n; i++) loops.push(loop())
  }
  await Promise.all(loops)
  finish()
}

// ---------------------------------------------------------------------------------------------------------------
// heap per parked waiter
// ---------------------------------------------------------------------------------------------------------------

const gc = (): void => {
  const collect = (globalThis as { gc?: () => void }).gc
  if (collect === undefined) throw new Error("run with --expose-gc")
  collect()
  collect()
}

const settle = async (ticks: number) => {
  for (let i = 0; i < ticks; i++) await promiseTick()
  await new Promise((r) => setTimeout(r, 20))
}

const heap = async (job: Extract<Job, { mode: "heap" }>): Promise<void> => {
  const subject = await makeSubject(job.pool, 1)
  const w = job.waiters
  const holders: Array<unknown> = new Array(w).fill(null)
  let started = 0
  // one borrower takes the only resource and keeps it
  if (subject.kind === "effect") {
    holders[0] = Effect.runFork(subject.cycle(noop, () => Effect.async<void>(() => {})))
  } else {
    holders[0] = await subject.acquire()
  }
  await settle(10)
  gc()
  const before = process.memoryUsage().heapUsed
  if (subject.kind === "effect") {
    const cycle = subject.cycle
    const waiter = Effect.suspend(() => {
      started++
      return cycle(noop, () => Effect.void)
    })
    for (let i = 0; i < w; i++) holders[i] = Effect.runFork(waiter)
  } else {
    const { acquire, release } = subject
    const waiter = async () => {
      started++
      release(await acquire())
    }
    for (let i = 0; i < w; i++) holders[i] = waiter()
  }
  for (let i = 0; i < 10_000 && started < w; i++) await promiseTick()
  await settle(20)
  gc()
  const after = process.memoryUsage().heapUsed
  print({ pool: job.pool, waiters: w, started, bytesPerWaiter: (after - before) / w, kept: holders.length })
  process.exit(0)
}

const job = JSON.parse(process.argv[2] ?? "{}") as Job
const main = job.mode === "heap" ? heap(job) : throughput(job)
main.catch((error) => {
  console.error(error)
  process.exit(1)
})

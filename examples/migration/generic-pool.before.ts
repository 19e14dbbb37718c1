/**
 * The "before" side of docs/migration/generic-pool.md: generic-pool lending sandboxes (Node `vm` contexts with a
 * template compiled in, expensive to set up, cheap to reuse), driven by promise code. Each function is one pair of
 * the page; `examples/migration/generic-pool.after.ts` computes the same with effect-reservoir. Run it with
 * `npx tsx examples/migration/generic-pool.before.ts`.
 */
import * as genericPool from "generic-pool"
import * as vm from "node:vm"

/** A sandbox: a context with the invoice template compiled into it. */
export interface Sandbox {
  readonly id: number
  readonly context: vm.Context
}

export const template = "globalThis.render = (who, cents) => who + ': ' + (cents / 100).toFixed(2) + ' EUR'"

export const invoices: ReadonlyArray<readonly [string, number]> = [
  ["ada", 1250],
  ["grace", 990],
  ["linus", 30000],
  ["margaret", 5],
  ["barbara", 72000],
  ["ken", 100]
]

const render = (sandbox: Sandbox, [who, cents]: readonly [string, number]): string =>
  vm.runInContext(`render(${JSON.stringify(who)}, ${cents})`, sandbox.context) as string

// --- pair 1: a factory, the pool's options, pool.use ---

export const makePool = (created: Array<number>) =>
  genericPool.createPool<Sandbox>({
    create: async () => {
      const context = vm.createContext({})
      vm.runInContext(template, context)
      const sandbox = { id: created.length + 1, context }
      created.push(sandbox.id)
      return sandbox
    },
    destroy: async () => {}
  }, {
    max: 2,
    min: 1,
    acquireTimeoutMillis: 2_000,
    fifo: true
  })

export const renderAll = async () => {
  const created: Array<number> = []
  const pool = makePool(created)
  try {
    const lines = await Promise.all(invoices.map((invoice) => pool.use(async (sandbox) => render(sandbox, invoice))))
    return { lines, created: created.length }
  } finally {
    await pool.drain()
    await pool.clear()
  }
}

// --- pair 2: a sandbox found broken is destroyed, not released ---

export const destroyBroken = async () => {
  const created: Array<number> = []
  const pool = makePool(created)
  try {
    const sandbox = await pool.acquire()
    await pool.destroy(sandbox) // instead of release: the pool creates another when it needs one
    const next = await pool.acquire()
    await pool.release(next)
    return { replaced: next.id !== sandbox.id, line: await pool.use(async (s) => render(s, invoices[0]!)) }
  } finally {
    await pool.drain()
    await pool.clear()
  }
}

// --- pair 3: the factory cannot create ---

export const failingFactory = async () => {
  let attempts = 0
  const pool = genericPool.createPool<Sandbox>({
    // a create that fails after a while, as a connect to a service that is down does
    create: () => {
      attempts++
      return new Promise((_, reject) => setTimeout(() => reject(new Error("sandbox failed to start")), 10))
    },
    destroy: async () => {}
  }, { max: 1, acquireTimeoutMillis: 200 })
  try {
    await pool.acquire()
    return { name: "acquired", message: "", attempts }
  } catch (error) {
    // not the factory's error: the acquire is rejected by its timeout, the creates retried until then
    return { name: (error as Error).name, message: (error as Error).message, attempts }
  } finally {
    await pool.clear()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  Promise.all([renderAll(), destroyBroken(), failingFactory()]).then(
    (result) => console.log(JSON.stringify(result, null, 2)),
    (error) => {
      console.error(error)
      process.exit(1)
    }
  )
}

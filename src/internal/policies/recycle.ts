import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Random from "effect/Random"
import type { ConnectionRecord } from "../../ConnectionRecord.js"
import type * as Policy from "../../Policy.js"
import { ConnectionRejected } from "../../PoolError.js"
import * as check from "./check.js"
import { stateful } from "./make.js"
import { Alarm, millis, whenDue } from "./upkeep.js"

const expired = new ConnectionRejected({ reason: "expired" })

/** The golden ratio's fractional part: the step of the most even sequence of fractions there is (a Weyl sequence). */
const PHI = 0.6180339887498949

/**
 * Recycle. Each connection's lifetime is `maxAge` less a part of up to `spread` of it. The part is
 * `frac(offset + id × φ)`: `offset` is drawn once per pool from Effect's `Random` (so pools started together, in
 * one process or many, do not expire in step), and the golden-ratio step spreads connections opened together
 * evenly over the window, as random draws would only on average. Checked at checkout and at return (a cheap
 * comparison, no step of its own), and in the background for idle connections, sleeping until the next one is due.
 *
 * @internal
 */
export const recycle = <C = never, E = never>(
  maxAge: Duration.DurationInput,
  options?: { readonly spread?: number | undefined }
): Policy.Policy<C, E> => {
  const problems = check.problemsOf(
    check.duration("maxAge", maxAge, { positive: true, infinite: true }),
    options?.spread === undefined ? undefined : check.fraction("spread", options.spread, 0.5)
  )
  if (problems.length > 0) return check.invalid("recycle", problems)
  const age = millis(maxAge)
  // no maximum age: nothing ever expires (and `Infinity - Infinity` below would be `NaN`)
  if (!Number.isFinite(age)) return { name: "recycle" }
  const window = age * (options?.spread ?? 0.025)
  return stateful<C, E>("recycle", (pool) =>
    Effect.map(Random.next, (offset) => {
      const expiresAt = (record: ConnectionRecord): number => {
        const part = (offset + record.id * PHI) % 1
        return record.createdAt + age - window * part
      }
      const atCheckout = (context: Policy.HookContext<C, E>) =>
        context.now >= expiresAt(context.record) ? Effect.fail(expired) : Effect.void
      // a connection lent while the loop went to sleep may expire before the loop wakes: it rings as it comes back
      const alarm = new Alarm()
      const atReturn = (context: Policy.HookContext<C, E>) => {
        const at = expiresAt(context.record)
        if (context.now >= at) return Effect.fail(expired)
        alarm.ring(at)
        return Effect.void
      }
      const due = Effect.map(pool.idle, (records) => {
        let next = Infinity
        for (const record of records) next = Math.min(next, expiresAt(record))
        return next
      })
      const pass = Effect.flatMap(Effect.zip(pool.now, pool.idle), ([now, records]) =>
        Effect.zipRight(
          Effect.forEach(records, (record) => now >= expiresAt(record) ? pool.retire(record, "expired") : Effect.void, {
            discard: true
          }),
          pool.refill
        ))
      return {
        onCheckout: atCheckout,
        onReturn: atReturn,
        // a connection opened after the loop went to sleep expires `age - window` later at the earliest
        background: () => whenDue(pool, due, age - window, pass, alarm)
      }
    }))
}

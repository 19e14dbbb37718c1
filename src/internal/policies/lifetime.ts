import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import * as ScheduleDecision from "effect/ScheduleDecision"
import type { ConnectionRecord } from "../../ConnectionRecord.js"
import type * as Policy from "../../Policy.js"
import { ConnectionRejected } from "../../PoolError.js"
import * as check from "./check.js"
import { stateful } from "./make.js"

const expired = new ConnectionRejected({ reason: "expired" })

/**
 * A lifetime as a schedule. Each connection's schedule state lives in a `WeakMap` of this instance, keyed by the
 * record: it is dropped with the connection, and two pools (or two `lifetime` policies in one pool) never share
 * it. Stepping at checkout means the schedule counts lendings (`Schedule.recurs(n)` continues `n` times) and its
 * clock starts at the first lending (`Schedule.recurUpTo(d)` measures from its first step). Only the decision is
 * read: the schedule's delays mean nothing here, since a checkout does not wait for them.
 *
 * @internal
 */
export const lifetime = <C = never, E = never>(
  schedule: Schedule.Schedule<unknown, ConnectionRecord>
): Policy.Policy<C, E> =>
  !Schedule.isSchedule(schedule) ?
    check.invalid("lifetime", [`schedule: Expected a Schedule, got ${String(schedule)}`]) :
    stateful<C, E>("lifetime", () =>
      Effect.sync(() => {
        const states = new WeakMap<ConnectionRecord, unknown>()
        return {
          onCheckout: (context) => {
            const record = context.record
            const state = states.has(record) ? states.get(record) : schedule.initial
            return Effect.flatMap(schedule.step(context.now, record, state), ([next, _, decision]) => {
              if (ScheduleDecision.isDone(decision)) {
                // the connection is closed by this rejection: its state goes with it
                states.delete(record)
                return Effect.fail(expired)
              }
              states.set(record, next)
              return Effect.void
            })
          }
        }
      }))

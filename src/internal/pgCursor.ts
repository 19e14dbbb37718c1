import * as Chunk from "effect/Chunk"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import Cursor from "pg-cursor"
import type { Row } from "../Driver.js"
import type * as Pg from "../Driver/Pg.js"
import { PgError } from "../Driver/Pg.js"
import { failure, sessionFor } from "./pg.js"

/**
 * A statement read through a server-side cursor (pg-cursor: a named portal, `batchSize` rows per round trip), so a
 * large result never sits in memory whole. The cursor is one statement in the session's order, like any other: a
 * cancel request on its way is waited for before it is sent, and it counts as in flight until the server's
 * `ReadyForQuery` after it. Ended early (the consumer stops, or is interrupted), the portal is closed; a read still
 * in flight then gets a cancel request when it is the only statement in flight (`Session.abandon`), and a server that
 * does not acknowledge the close within the cancel timeout leaves the session broken, so the pool closes it rather
 * than lend it again.
 *
 * @internal
 */
export const stream = (
  connection: Pg.PgConnection,
  sql: string,
  params: ReadonlyArray<unknown>,
  batchSize = 128
): Stream.Stream<Row, PgError> =>
  Stream.unwrapScoped(Effect.suspend(() => {
    const session = sessionFor(connection)
    const ready: Effect.Effect<void, PgError> = Effect.suspend(() => {
      if (session.broken !== undefined) {
        const broken = session.broken
        return Effect.fail(new PgError({ reason: broken.reason, operation: "query", detail: broken.detail }))
      }
      if (!session.cancelling) return Effect.void
      return Effect.zipRight(
        Effect.async<void>((resume) => {
          session.waiting.push(() => resume(Effect.void))
        }),
        ready
      )
    })
    return Effect.flatMap(ready, () =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const cursor = new Cursor(sql, params as Array<unknown>)
          const state: State = { cursor, seq: session.sent, settled: false, reading: false }
          // a cursor that ends well says so ('end'); one that fails never does (node-postgres forgets the statement
          // before handing it the error): the statement is over either way
          cursor.once("end", () => settle(session, state))
          session.client.query(cursor)
          session.sent++
          session.lastSql = sql
          // node-postgres arms its `query_timeout` for every statement and disarms it through the statement's
          // callback, which a cursor never calls: without this, a stream read for longer than `statementTimeout`
          // plus a second would be cut as a lost connection. The server's `statement_timeout` still bounds the
          // stream (it runs until the portal is done): a stream read past it fails with `StatementTimeout`.
          const armed = (cursor as unknown as { callback?: (error: null) => void }).callback
          if (typeof armed === "function") armed(null)
          return state
        }),
        (state) => close(session, state)
      )).pipe(Effect.map((state) =>
        Stream.repeatEffectChunkOption(Effect.async<Chunk.Chunk<Row>, Option.Option<PgError>>((resume) => {
          state.reading = true
          state.cursor.read(batchSize, (error, rows) => {
            state.reading = false
            if (error !== null && error !== undefined) {
              // the server refused it: its portal is gone, there is nothing to close
              settle(session, state)
              return resume(Effect.fail(Option.some(failure(session, "query", error))))
            }
            resume(rows.length === 0 ? Effect.fail(Option.none()) : Effect.succeed(Chunk.unsafeFromArray(rows)))
          })
        }))
      ))
  }))

interface State {
  readonly cursor: Cursor
  readonly seq: number
  /** The statement is over in the session's order (`Session.done` counted it). */
  settled: boolean
  reading: boolean
}

type Session = ReturnType<typeof sessionFor>

const settle = (session: Session, state: State): void => {
  if (state.settled) return
  state.settled = true
  session.done++
}

/**
 * Ends a cursor the consumer stopped reading: closes its portal and waits for the server's `ReadyForQuery` after the
 * close (a read in flight gets a cancel request first, when it is the only statement in flight). A session that
 * dies meanwhile ends the wait at once; a server that says nothing within the cancel timeout leaves the session
 * broken, so the pool closes it rather than lend it again.
 */
const close = (session: Session, state: State): Effect.Effect<void> => {
  if (state.settled || session.closing || session.broken !== undefined) return Effect.void
  if (state.reading) session.abandon(state.seq)
  const timeout = session.resolved.cancelTimeout
  return Effect.async<void>((resume) => {
    let over = false
    const done = () => {
      if (over) return
      over = true
      clearTimeout(timer)
      session.client.off("end", done)
      session.client.off("error", done)
      settle(session, state)
      resume(Effect.void)
    }
    const timer = setTimeout(() => {
      if (!over) {
        session.fail(
          new PgError({
            reason: "Timeout",
            operation: "query",
            detail: `the server did not acknowledge the close of a cursor within ${Duration.format(timeout)}`
          })
        )
      }
      done()
    }, Duration.toMillis(timeout))
    session.client.once("end", done)
    session.client.once("error", done)
    try {
      // the callback runs on the connection's next ReadyForQuery: the close's, or that of an error that came first
      state.cursor.close(done)
    } catch {
      // the socket is gone: the session is lost and the pool closes it
      done()
    }
  })
}

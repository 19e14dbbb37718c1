import * as Cause from "effect/Cause"
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { NodeInspectSymbol } from "effect/Inspectable"
import * as Layer from "effect/Layer"
import * as Predicate from "effect/Predicate"
import * as Redacted from "effect/Redacted"
import type * as Scope from "effect/Scope"
import pg from "pg"
import { standalone } from "../ConnectionRecord.js"
import type { ConnectContext, Driver, Row } from "../Driver.js"
import type * as Pg from "../Driver/Pg.js"
import { PgDriver, PgError } from "../Driver/Pg.js"
import * as driverInternal from "./driver.js"
import { sendCancelRequest } from "./pgCancel.js"
import * as checks from "./policies/check.js"
import { decode } from "./policies/upkeep.js"

type Operation = PgError["operation"]

// ---------------------------------------------------------------------------------------------------------------
// classification
// ---------------------------------------------------------------------------------------------------------------

const disconnectStates: ReadonlySet<string> = new Set(["57P01", "57P02", "57P03", "57P05", "25P03"])

const socketCodes: ReadonlySet<string> = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNREFUSED",
  "ETIMEDOUT",
  "ECONNABORTED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTCONN",
  "ERR_STREAM_DESTROYED",
  "ERR_STREAM_WRITE_AFTER_END"
])

const disconnectMessage =
  /query read timeout|connection terminated|server closed the connection unexpectedly|client was closed and is not queryable|client has encountered a connection error|connection ended unexpectedly|terminating connection|timeout expired|socket hang up/i

const SQLSTATE = /^[0-9A-Z]{5}$/

const stringField = (u: unknown, key: string): string | undefined =>
  Predicate.hasProperty(u, key) && typeof u[key] === "string" ? u[key] : undefined

/** The SQLSTATE of a server error (node-postgres's `DatabaseError` carries a `severity`). */
const sqlStateOf = (u: unknown): string | undefined => {
  const code = stringField(u, "code")
  return code !== undefined && SQLSTATE.test(code) && Predicate.hasProperty(u, "severity") ? code : undefined
}

/** The operating system's (or Node's) code of a socket error. */
const systemCodeOf = (u: unknown): string | undefined => {
  const code = stringField(u, "code")
  return code !== undefined && (code.startsWith("E") || code.startsWith("ERR_")) && sqlStateOf(u) === undefined ?
    code :
    undefined
}

const messageOf = (u: unknown): string => {
  const message = stringField(u, "message")
  return message !== undefined && message.length > 0 ? message : String(u)
}

const classify = (code: string | undefined, systemCode: string | undefined, message: string): boolean =>
  (code !== undefined && (code.startsWith("08") || disconnectStates.has(code))) ||
  (systemCode !== undefined && socketCodes.has(systemCode)) ||
  disconnectMessage.test(message)

/** @internal */
export const isDisconnect = (error: unknown): boolean => {
  if (error instanceof PgError) {
    return error.reason === "Disconnected" || error.reason === "CommitOutcomeUnknown" ||
      (error.reason === "Timeout" && error.operation !== "connect" && error.operation !== "check") ||
      classify(error.code, error.systemCode, error.detail)
  }
  if (!Predicate.isObject(error)) return false
  return classify(sqlStateOf(error), systemCodeOf(error), messageOf(error))
}

const URL_PASSWORD = /(postgres(?:ql)?:\/\/[^:/@\s]*:)[^@\s]*@/gi

const scrub = (text: string, secrets: ReadonlyArray<string>): string => {
  let out = text.replace(URL_PASSWORD, "$1***@")
  for (const secret of secrets) {
    if (secret.length > 0) out = out.split(secret).join("***")
  }
  return out
}

const wrap = (operation: Operation, secrets: ReadonlyArray<string>) => (cause: unknown): PgError => {
  if (cause instanceof PgError) return cause
  const code = sqlStateOf(cause)
  const systemCode = systemCodeOf(cause)
  const detail = scrub(messageOf(cause), secrets)
  const lost = classify(code, systemCode, detail)
  const reason: PgError["reason"] = operation === "connect" || operation === "check" ?
    (/timeout expired/i.test(detail) ? "Timeout" : "ConnectFailed") :
    code === "57014" && /statement timeout/i.test(detail) ?
    "StatementTimeout" :
    lost ?
    (operation === "commit" ? "CommitOutcomeUnknown" : "Disconnected") :
    "QueryFailed"
  return new PgError({
    reason,
    operation,
    detail,
    ...(code === undefined ? {} : { code }),
    ...(systemCode === undefined ? {} : { systemCode }),
    cause: scrubbedCause(cause, detail)
  })
}

/** The foreign error itself, unless its message held a secret: then only its name and the scrubbed message. */
const scrubbedCause = (cause: unknown, detail: string): unknown =>
  messageOf(cause) === detail ? cause : { name: stringField(cause, "name") ?? "Error", message: detail }

// ---------------------------------------------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------------------------------------------

/** How long after the server's `statement_timeout` node-postgres's `query_timeout` gives up on a silent server. */
const QUERY_TIMEOUT_GRACE = Duration.seconds(1)

interface Resolved {
  readonly config: (applicationName: string) => pg.ClientConfig
  readonly applicationName: string | undefined
  readonly liveness: string
  readonly connectTimeout: Duration.Duration | undefined
  readonly closeTimeout: Duration.Duration
  /** How long a cancel request may take before the session it was for counts as lost. */
  readonly cancelTimeout: Duration.Duration
  readonly statementTimeout: Duration.Duration | undefined
  /** The client-side bound: `statementTimeout` plus `QUERY_TIMEOUT_GRACE`. */
  readonly queryTimeout: Duration.Duration | undefined
  readonly secrets: ReadonlyArray<string>
  /** What is wrong with the options (`Driver.problems`). */
  readonly problems: ReadonlyArray<string>
}

const millis = (duration: Duration.Duration): number => Math.max(1, Math.ceil(Duration.toMillis(duration)))

const resolve = (options: Pg.PgOptions | undefined): Resolved => {
  const url = options?.url === undefined ?
    undefined :
    Redacted.isRedacted(options.url) ?
    Redacted.value(options.url) :
    options.url
  const password = options?.password === undefined ?
    undefined :
    Redacted.isRedacted(options.password) ?
    Redacted.value(options.password) :
    options.password
  const problems: Array<string> = []
  /** A timeout of more than 0; a bad one is a problem (the pool refuses the driver), never clamped. */
  const timeoutOf = (option: string, input: Duration.DurationInput | undefined): Duration.Duration | undefined => {
    if (input === undefined) return undefined
    const problem = checks.duration(option, input, { positive: true, infinite: false })
    if (problem !== undefined) {
      problems.push(problem)
      return undefined
    }
    return decode(input)
  }
  const connectTimeout = timeoutOf("connectTimeout", options?.connectTimeout)
  const statementTimeout = timeoutOf("statementTimeout", options?.statementTimeout)
  const closeTimeout = timeoutOf("closeTimeout", options?.closeTimeout)
  const queryTimeout = statementTimeout === undefined ? undefined : Duration.sum(statementTimeout, QUERY_TIMEOUT_GRACE)
  const secrets: Array<string> = []
  if (password !== undefined) secrets.push(password)
  if (url !== undefined) {
    const match = /^postgres(?:ql)?:\/\/[^:/@\s]*:([^@\s]*)@/i.exec(url)
    if (match !== null && match[1] !== undefined && match[1].length > 0) {
      secrets.push(match[1])
      try {
        secrets.push(decodeURIComponent(match[1]))
      } catch {
        // the raw form is already listed
      }
    }
  }
  return {
    config: (applicationName) => ({
      ...options?.clientConfig,
      ...(url === undefined ? {} : { connectionString: url }),
      ...(options?.host === undefined ? {} : { host: options.host }),
      ...(options?.port === undefined ? {} : { port: options.port }),
      ...(options?.user === undefined ? {} : { user: options.user }),
      ...(options?.database === undefined ? {} : { database: options.database }),
      ...(password === undefined ? {} : { password }),
      ...(connectTimeout === undefined ? {} : { connectionTimeoutMillis: millis(connectTimeout) }),
      ...(statementTimeout === undefined || queryTimeout === undefined ? {} : {
        statement_timeout: millis(statementTimeout),
        query_timeout: millis(queryTimeout)
      }),
      application_name: applicationName
    }),
    applicationName: options?.applicationName,
    liveness: options?.liveness ?? "SELECT 1",
    connectTimeout,
    closeTimeout: closeTimeout ?? Duration.seconds(5),
    cancelTimeout: connectTimeout ?? Duration.seconds(5),
    statementTimeout,
    queryTimeout,
    secrets,
    problems
  }
}

// ---------------------------------------------------------------------------------------------------------------
// secrets
// ---------------------------------------------------------------------------------------------------------------

/** What node-postgres resolved as the password (the options', the URL's or `PGPASSWORD`), next to the options'. */
const secretsOf = (resolved: Resolved, client: pg.Client): ReadonlyArray<string> => {
  const parameters: unknown = (client as unknown as { readonly connectionParameters?: unknown }).connectionParameters
  const password = stringField(parameters, "password")
  return password === undefined || password.length === 0 || resolved.secrets.includes(password) ?
    resolved.secrets :
    [...resolved.secrets, password]
}

const forget = (target: unknown, key: string): void => {
  if (!Predicate.isObject(target)) return
  try {
    Object.defineProperty(target, key, { value: null, writable: true, configurable: true, enumerable: false })
  } catch {
    // a field node-postgres made permanent: nothing left to do but overwrite it
    ;(target as Record<string, unknown>)[key] = null
  }
}

/**
 * Drops the password from a client whose connect is over (node-postgres keeps it on the client and on its
 * `connectionParameters`, non-enumerable but reachable): a client never authenticates twice.
 */
const forgetPassword = (client: pg.Client): void => {
  forget(client, "password")
  forget((client as unknown as { readonly connectionParameters?: unknown }).connectionParameters, "password")
}

// ---------------------------------------------------------------------------------------------------------------
// the connection
// ---------------------------------------------------------------------------------------------------------------

/**
 * One session, out of reach of the connection object the driver hands out (which holds it in a `#private` field):
 * the node-postgres client, the pool's context, the secrets to scrub from messages, and the bookkeeping of
 * statements in flight and of cancel requests.
 */
export class Session {
  processId = 0
  /** Set once the connect succeeded: from then on, a lost socket is reported to the pool. */
  established = false
  /** Set once the driver started closing it (or gave up on it): a lost socket then means nothing. */
  closing = false
  /** Statements handed to node-postgres, and statements it answered: they run in that order. */
  sent = 0
  done = 0
  /** The last statement sent (for the message). */
  lastSql = ""
  /** A cancel request is on its way: statements wait for it before they are sent. */
  cancelling = false
  /** The statements waiting for it. */
  waiting: Array<() => void> = []
  /** Why the session cannot be used any more (a client-side timeout, a cancel request that failed). */
  broken: PgError | undefined = undefined
  private ending: Promise<void> | undefined = undefined

  constructor(
    readonly client: pg.Client,
    readonly applicationName: string,
    readonly resolved: Resolved,
    readonly secrets: ReadonlyArray<string>,
    private readonly context: ConnectContext
  ) {}

  /** The client's `error` and `end` events: the session died outside any Effect. */
  lost(cause: unknown): void {
    if (!this.established || this.closing) return
    this.context.invalidate(wrap("query", this.secrets)(cause))
  }

  /** Marks the session unusable: later statements fail with `error`, and the pool is told to invalidate it. */
  fail(error: PgError): void {
    if (this.broken !== undefined) return
    this.broken = error
    if (this.established && !this.closing) this.context.invalidate(error)
  }

  /**
   * Why the session cannot be lent again: a statement is still in flight (its caller was interrupted), a cancel
   * request is on its way (the next statement must not be sent before it arrived), or the session is broken. The
   * pool asks on every return (`Driver.busy`) and invalidates it.
   */
  busy(): PgError | undefined {
    if (this.closing) return undefined
    if (this.broken !== undefined) return this.broken
    if (this.sent === this.done && !this.cancelling) return undefined
    return new PgError({
      reason: "Interrupted",
      operation: "query",
      detail: `interrupted while a statement was in flight (${this.lastSql.slice(0, 60)}); the session is busy` +
        (this.cancelling ? ", a cancel request is on its way" : "")
    })
  }

  /**
   * The caller of statement `seq` was interrupted. When that statement is the one running and nothing was sent
   * after it, a cancel request goes to the server; statements sent from now on wait until it arrived, so that it can
   * only stop this statement (or find the session idle and do nothing), never a later one. A statement with others
   * queued behind it is left to run: cancelling it could stop the next one instead. Either way the session is busy
   * (`busy`) until its statements ended.
   */
  abandon(seq: number): void {
    if (this.closing || this.broken !== undefined || this.cancelling) return
    if (this.done !== seq || this.sent !== seq + 1) return
    const { processID, secretKey } = this.client as unknown as {
      readonly processID?: unknown
      readonly secretKey?: unknown
    }
    const host = this.client.host
    const port = this.client.port
    if (typeof processID !== "number" || typeof secretKey !== "number" || typeof host !== "string") return
    this.cancelling = true
    sendCancelRequest(
      { host, port, processId: processID, secretKey },
      Duration.toMillis(this.resolved.cancelTimeout),
      (error) => this.cancelled(error)
    )
  }

  private cancelled(error: Error | undefined): void {
    this.cancelling = false
    if (error !== undefined) {
      this.fail(
        new PgError({
          reason: "Disconnected",
          operation: "query",
          detail: `the cancel request for an interrupted statement failed (${
            scrub(messageOf(error), this.secrets)
          }); the session may still be busy`
        })
      )
    }
    const waiting = this.waiting
    this.waiting = []
    for (const send of waiting) send()
  }

  /** Ends the client once, whatever calls it; later calls share the first call's promise. */
  end(): Promise<void> {
    if (this.ending === undefined) {
      this.closing = true
      this.ending = this.client.end().then(() => undefined, () => undefined)
    }
    return this.ending
  }

  /** Drops the socket without the goodbye: a connect cut short, or a server that does not answer it. */
  destroy(): void {
    this.closing = true
    const connection: unknown = (this.client as unknown as { readonly connection?: unknown }).connection
    const stream: unknown = Predicate.hasProperty(connection, "stream") ? connection.stream : undefined
    if (Predicate.hasProperty(stream, "destroy") && typeof stream.destroy === "function") {
      stream.destroy()
    }
  }
}

let sessionOf: (connection: Pg.PgConnection) => Session

/**
 * The connection the driver hands out: what identifies the session, and the session itself in a `#private` field,
 * which no property path, `util.inspect` or `JSON.stringify` reaches.
 */
class PgConnectionImpl implements Pg.PgConnection {
  readonly #session: Session
  constructor(session: Session, readonly processId: number, readonly applicationName: string) {
    this.#session = session
  }
  static {
    sessionOf = (connection) => (connection as PgConnectionImpl).#session
  }
  toJSON() {
    return { _id: "PgConnection", processId: this.processId, applicationName: this.applicationName }
  }
  toString(): string {
    return `PgConnection(${this.processId}, ${this.applicationName})`
  }
  [NodeInspectSymbol]() {
    return this.toJSON()
  }
}

/**
 * A cancel request still on its way is waited for first (it ends within the cancel timeout): a proxy between the
 * pool and the server (PgBouncer) finds the session by its client connection, and drops the cancel of a client that
 * has already said goodbye, leaving the statement running on the server.
 */
const cancelSettled = (session: Session): Effect.Effect<void> =>
  session.cancelling ?
    Effect.async<void>((resume) => {
      session.waiting.push(() => resume(Effect.void))
    }) :
    Effect.void

const close = (session: Session, timeout: Duration.Duration): Effect.Effect<void> =>
  Effect.zipRight(
    cancelSettled(session),
    Effect.tryPromise({ try: () => session.end(), catch: (error) => error })
  ).pipe(
    Effect.timeout(timeout),
    Effect.catchAll(() =>
      Effect.zipRight(
        Effect.sync(() => session.destroy()),
        Effect.logWarning(
          `PostgreSQL session ${session.processId} (${session.applicationName}) did not close within ` +
            `${Duration.format(timeout)}; its socket was dropped`
        )
      )
    )
  )

/**
 * Opens a session. A connect cut short (interrupted, or past `connectTimeout`) destroys its socket at once: there is
 * no session yet to say goodbye to, and a graceful end would wait for a server that may never answer (a blackhole),
 * leaving the socket half-open. Whatever the outcome, the client forgets the password once the connect is over.
 */
const connect =
  (resolved: Resolved) => (context: ConnectContext): Effect.Effect<Pg.PgConnection, PgError, Scope.Scope> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.gen(function*() {
        const applicationName = resolved.applicationName ?? context.poolName
        const client = yield* Effect.try({
          try: () => new pg.Client(resolved.config(applicationName)),
          catch: wrap("connect", resolved.secrets)
        })
        const session = new Session(client, applicationName, resolved, secretsOf(resolved, client), context)
        client.on("error", (error) => session.lost(error))
        client.on("end", () => session.lost(new Error("Connection terminated unexpectedly")))
        let opening = Effect.async<void, PgError>((resume) => {
          client.connect((error: Error | null) =>
            resume(error === null ? Effect.void : Effect.fail(wrap("connect", session.secrets)(error)))
          )
          return Effect.sync(() => session.destroy())
        })
        const connectTimeout = resolved.connectTimeout
        if (connectTimeout !== undefined) {
          opening = Effect.timeoutFail(opening, {
            duration: connectTimeout,
            onTimeout: () =>
              new PgError({
                reason: "Timeout",
                operation: "connect",
                detail: `connect did not complete within ${Duration.format(connectTimeout)}`
              })
          })
        }
        const exit = yield* Effect.exit(restore(opening))
        forgetPassword(client)
        if (Exit.isFailure(exit)) {
          session.destroy()
          return yield* Effect.failCause(exit.cause)
        }
        session.processId = (client as unknown as { readonly processID: number | null }).processID ?? 0
        session.established = true
        yield* Effect.addFinalizer(() => close(session, resolved.closeTimeout))
        return new PgConnectionImpl(session, session.processId, applicationName)
      })
    )

const toVoid = (_: unknown): void => undefined

const rowsOf = (result: unknown): ReadonlyArray<Row> => {
  const last = Array.isArray(result) ? result[result.length - 1] : result
  return Predicate.hasProperty(last, "rows") && Array.isArray(last.rows) ? last.rows as ReadonlyArray<Row> : []
}

const commandOf = (result: unknown): string | undefined => {
  const last = Array.isArray(result) ? result[result.length - 1] : result
  return stringField(last, "command")
}

/** node-postgres's message when its `query_timeout` ran out. */
const QUERY_READ_TIMEOUT = "Query read timeout"

/** A statement's failure; node-postgres's `query_timeout` breaks the session (the statement is still in flight). */
export const failure = (session: Session, operation: Operation, error: unknown): PgError => {
  if (messageOf(error) !== QUERY_READ_TIMEOUT || session.resolved.queryTimeout === undefined) {
    return wrap(operation, session.secrets)(error)
  }
  const timeout = Duration.format(session.resolved.queryTimeout)
  const broken = new PgError({
    reason: operation === "commit" ? "CommitOutcomeUnknown" : "Timeout",
    operation,
    detail: `no answer from the server within ${timeout} (statementTimeout plus ${
      Duration.format(QUERY_TIMEOUT_GRACE)
    }); the connection is presumed lost`
  })
  session.fail(broken)
  return broken
}

/** Not sent yet, and never to be: its caller was interrupted while it waited for a cancel request. */
const ABANDONED = -2

/**
 * Sends one statement, without a fiber, and calls `done` once with its outcome: node-postgres's callback form of
 * `query` (the promise form allocates a promise and a `.catch` promise per statement, and answers two microtask hops
 * after the result is parsed; the callback runs as the result arrives). Waits first for a cancel request on its way.
 * Returns the statement's `abandon`: its caller was interrupted. A statement sent is handed to `Session.abandon`,
 * which sends the server a cancel request when it is safe to; one still waiting to be sent never will be.
 *
 * The pool calls it at the moment it hands a connection to a waiting statement (`Pool.query`), so the caller waits
 * once, for the result.
 *
 * @internal
 */
export const start = <A>(
  connection: Pg.PgConnection,
  sql: string,
  params: ReadonlyArray<unknown> | undefined,
  operation: Operation,
  finish: (result: unknown) => A,
  rowMode: "array" | undefined,
  done: (exit: Exit.Exit<A, PgError>) => void
): () => void => {
  const session = sessionOf(connection)
  /** The statement's place in the session's order once sent; `-1` before. */
  let seq = -1
  const answered = (error: Error | null | undefined, result: unknown): void => {
    session.done++
    done(
      error === null || error === undefined ?
        Exit.succeed(finish(result)) :
        Exit.fail(failure(session, operation, error))
    )
  }
  const send = (): void => {
    if (seq === ABANDONED) return
    const broken = session.broken
    if (broken !== undefined) {
      return done(Exit.fail(new PgError({ reason: broken.reason, operation, detail: broken.detail })))
    }
    seq = session.sent
    try {
      if (rowMode !== undefined) {
        session.client.query({ text: sql, values: params as Array<unknown>, rowMode }, answered)
      } else if (params === undefined || params.length === 0) session.client.query(sql, answered)
      else session.client.query(sql, params as Array<unknown>, answered)
      session.sent++
      session.lastSql = sql
    } catch (error) {
      seq = -1
      done(Exit.fail(wrap(operation, session.secrets)(error)))
    }
  }
  if (session.cancelling) session.waiting.push(send)
  else send()
  return () => {
    if (seq >= 0) session.abandon(seq)
    else seq = ABANDONED
  }
}

/**
 * One statement, as a bare `Effect.async` over `start`. No `AbortSignal` (an `AbortController` and a listener per
 * statement) and no canceler returned from `async` (Effect wraps that in `onExit`: about 2.5 µs of CPU per
 * statement, measured); one mask and one `catchAllCause`, which a success passes without a step (about 0.35 µs),
 * notice the interruption instead and abandon the statement.
 *
 * @internal
 */
export const run = <A = unknown>(
  connection: Pg.PgConnection,
  sql: string,
  params: ReadonlyArray<unknown> | undefined,
  operation: Operation,
  /** Applied to the result in the callback, so a caller needs no `Effect.map` step after it. */
  finish: (result: unknown) => A = (result) => result as A,
  /** `"array"`: rows as arrays of values (node-postgres's `rowMode`). */
  rowMode?: "array"
): Effect.Effect<A, PgError> =>
  Effect.uninterruptibleMask((restore) => {
    // per run: the mask's body runs each time
    let abandon: (() => void) | undefined
    const statement = Effect.async<A, PgError>((resume) => {
      abandon = start(connection, sql, params, operation, finish, rowMode, resume)
    })
    return Effect.catchAllCause(restore(statement), (cause) => {
      if (abandon !== undefined && Cause.isInterrupted(cause)) abandon()
      return Effect.failCause(cause)
    })
  })

/**
 * Whether a transaction is open on the session, from the server's last word on it (the status of its last
 * `ReadyForQuery`, kept by node-postgres): "idle, no transaction" is `false`, and then a `ROLLBACK` has nothing to do,
 * so reset-on-return skips its round trip, as psycopg's `rollback()` does. A transaction open (`T`) or aborted (`E`),
 * or a statement still in flight (the pool closes such a connection before any reset), is `true`; a client that does
 * not report its status, `undefined`.
 */
const inTransaction = (connection: Pg.PgConnection): boolean | undefined => {
  const session = sessionOf(connection)
  const client = session.client as Partial<Pick<pg.Client, "getTransactionStatus">>
  if (typeof client.getTransactionStatus !== "function") return undefined
  return client.getTransactionStatus() !== "I" || session.sent !== session.done || session.cancelling
}

/** The session behind a connection, for the `SqlClient`'s cursors. @internal */
export const sessionFor = (connection: Pg.PgConnection): Session => sessionOf(connection)

/** @internal */
export const unsafeClient = (connection: Pg.PgConnection): pg.Client => sessionOf(connection).client

/** @internal */
export const driver = (options?: Pg.PgOptions): Driver<Pg.PgConnection, PgError> => {
  const resolved = resolve(options)
  return driverInternal.make<Pg.PgConnection, PgError>({
    dialect: "postgresql",
    problems: resolved.problems,
    connect: connect(resolved),
    query: (connection, sql, params) => run(connection, sql, params, "query", rowsOf),
    start: (connection, sql, params, done) => start(connection, sql, params, "query", rowsOf, undefined, done),
    ping: (connection) => run(connection, resolved.liveness, undefined, "ping", toVoid),
    begin: (connection) => run(connection, "BEGIN", undefined, "begin", toVoid),
    commit: (connection) =>
      Effect.flatMap(
        run(connection, "COMMIT", undefined, "commit"),
        (result) =>
          commandOf(result) === "ROLLBACK" ?
            Effect.fail(
              new PgError({
                reason: "CommitRolledBack",
                operation: "commit",
                code: "25P02",
                detail: "COMMIT rolled the transaction back: it had been aborted by an earlier error"
              })
            ) :
            Effect.void
      ),
    rollback: (connection) =>
      Effect.suspend(() =>
        inTransaction(connection) === false ?
          Effect.void :
          run(connection, "ROLLBACK", undefined, "rollback", toVoid)
      ),
    isDisconnect,
    busy: (connection) => sessionOf(connection).busy(),
    inTransaction
  })
}

/** @internal */
export const check = (options?: Pg.PgOptions): Effect.Effect<void, PgError> =>
  Effect.suspend(() => {
    const resolved = resolve(options)
    if (resolved.problems.length > 0) {
      return Effect.fail(
        new PgError({
          reason: "ConnectFailed",
          operation: "check",
          detail: `bad options: ${resolved.problems.join("; ")}`
        })
      )
    }
    const self = driver(options)
    const name = options?.applicationName ?? "effect-reservoir"
    const timeout = resolved.connectTimeout ?? Duration.seconds(10)
    return Effect.scoped(
      Effect.flatMap(
        self.connect({ record: standalone(name), poolName: name, invalidate: () => undefined }),
        (connection) => self.ping(connection)
      )
    ).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () =>
          new PgError({
            reason: "Timeout",
            operation: "check",
            detail: `no answer to the liveness query within ${Duration.format(timeout)}`
          })
      }),
      Effect.withSpan("effect-reservoir/Driver/Pg.check", { kind: "client", attributes: { "db.system": "postgresql" } })
    )
  })

/** @internal */
export const defaultConfig: Config.Config.Wrap<Pg.PgOptions> = { url: Config.redacted("DATABASE_URL") }

const layers = driverInternal.makeLayers({ tag: () => PgDriver, driver, check, config: defaultConfig })

/** @internal */
export const layer: {
  (options?: Pg.PgOptions): Layer.Layer<Pg.PgDriver, PgError>
  <I>(tag: Context.Tag<I, Driver<Pg.PgConnection, PgError>>, options?: Pg.PgOptions): Layer.Layer<I, PgError>
} = layers.layer

/** @internal */
export const layerConfig: {
  (config?: Config.Config.Wrap<Pg.PgOptions>): Layer.Layer<Pg.PgDriver, PgError | ConfigError.ConfigError>
  <I>(
    tag: Context.Tag<I, Driver<Pg.PgConnection, PgError>>,
    config?: Config.Config.Wrap<Pg.PgOptions>
  ): Layer.Layer<I, PgError | ConfigError.ConfigError>
} = layers.layerConfig

import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
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
  /connection terminated|server closed the connection unexpectedly|client was closed and is not queryable|client has encountered a connection error|connection ended unexpectedly|terminating connection|timeout expired|socket hang up/i

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

interface Resolved {
  readonly config: (applicationName: string) => pg.ClientConfig
  readonly applicationName: string | undefined
  readonly liveness: string
  readonly connectTimeout: Duration.Duration | undefined
  readonly closeTimeout: Duration.Duration
  readonly secrets: ReadonlyArray<string>
}

const resolve = (options: Pg.PgOptions | undefined): Resolved => {
  const url = options?.url === undefined ?
    undefined :
    Redacted.isRedacted(options.url) ?
    Redacted.value(options.url) :
    options.url
  const password = options?.password === undefined ? undefined : Redacted.value(options.password)
  const connectTimeout = options?.connectTimeout === undefined ? undefined : Duration.decode(options.connectTimeout)
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
      ...(connectTimeout === undefined ? {} : {
        connectionTimeoutMillis: Math.max(1, Math.ceil(Duration.toMillis(connectTimeout)))
      }),
      application_name: applicationName
    }),
    applicationName: options?.applicationName,
    liveness: options?.liveness ?? "SELECT 1",
    connectTimeout,
    closeTimeout: Duration.decode(options?.closeTimeout ?? "5 seconds"),
    secrets
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the connection
// ---------------------------------------------------------------------------------------------------------------

class Connection implements Pg.PgConnection {
  processId = 0
  /** Set once the connect succeeded: from then on, a lost socket is reported to the pool. */
  established = false
  /** Set once the driver started closing it (or gave up on it): a lost socket then means nothing. */
  closing = false
  private ending: Promise<void> | undefined = undefined

  constructor(
    readonly client: pg.Client,
    readonly applicationName: string,
    private readonly context: ConnectContext,
    private readonly secrets: ReadonlyArray<string>
  ) {}

  /** The client's `error` and `end` events: the session died outside any Effect. */
  lost(cause: unknown): void {
    if (!this.established || this.closing) return
    this.context.invalidate(wrap("query", this.secrets)(cause))
  }

  /** Statements sent and not yet answered, and the last one sent (for the message). */
  running = 0
  lastSql = ""

  /**
   * Why the session cannot be lent again: a statement is still in flight when the connection comes back, which
   * happens when its caller was interrupted. The pool asks on every return (`Driver.busy`) and invalidates it.
   */
  busy(): PgError | undefined {
    if (this.running === 0 || this.closing) return undefined
    return new PgError({
      reason: "Interrupted",
      operation: "query",
      detail: `interrupted while a statement was in flight (${this.lastSql.slice(0, 60)}); the session is busy`
    })
  }

  /** Ends the client once, whatever calls it; later calls share the first call's promise. */
  end(): Promise<void> {
    if (this.ending === undefined) {
      this.closing = true
      this.ending = this.client.end().then(() => undefined, () => undefined)
    }
    return this.ending
  }

  /** Drops the socket without the goodbye, when the server does not answer it. */
  destroy(): void {
    const connection: unknown = (this.client as unknown as { readonly connection?: unknown }).connection
    const stream: unknown = Predicate.hasProperty(connection, "stream") ? connection.stream : undefined
    if (Predicate.hasProperty(stream, "destroy") && typeof stream.destroy === "function") {
      stream.destroy()
    }
  }
}

const close = (connection: Connection, timeout: Duration.Duration): Effect.Effect<void> =>
  Effect.tryPromise({ try: () => connection.end(), catch: (error) => error }).pipe(
    Effect.timeout(timeout),
    Effect.catchAll(() =>
      Effect.zipRight(
        Effect.sync(() => connection.destroy()),
        Effect.logWarning(
          `PostgreSQL session ${connection.processId} (${connection.applicationName}) did not close within ` +
            `${Duration.format(timeout)}; its socket was dropped`
        )
      )
    )
  )

const connect = (resolved: Resolved) => (context: ConnectContext): Effect.Effect<Connection, PgError, Scope.Scope> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const applicationName = resolved.applicationName ?? context.poolName
      const client = yield* Effect.try({
        try: () => new pg.Client(resolved.config(applicationName)),
        catch: wrap("connect", resolved.secrets)
      })
      const connection = new Connection(client, applicationName, context, resolved.secrets)
      client.on("error", (error) => connection.lost(error))
      client.on("end", () => connection.lost(new Error("Connection terminated unexpectedly")))
      let opening: Effect.Effect<unknown, PgError> = Effect.tryPromise({
        try: (signal) => {
          const connecting = client.connect()
          signal.addEventListener("abort", () => void connection.end(), { once: true })
          connecting.then(() => {
            if (signal.aborted) void connection.end()
          }, () => undefined)
          return connecting
        },
        catch: wrap("connect", resolved.secrets)
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
      if (Exit.isFailure(exit)) {
        if (!Exit.isInterrupted(exit)) yield* close(connection, resolved.closeTimeout)
        return yield* Effect.failCause(exit.cause)
      }
      connection.processId = (client as unknown as { readonly processID: number | null }).processID ?? 0
      connection.established = true
      yield* Effect.addFinalizer(() => close(connection, resolved.closeTimeout))
      return connection
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

/**
 * One statement, as a bare `Effect.async` over node-postgres's callback form of `query`: the promise form allocates a
 * promise and a `.catch` promise per statement, and resumes the caller two microtask hops after the result is parsed;
 * the callback runs as the result arrives. No `AbortSignal` (an `AbortController` and a listener per statement,
 * measured at about 25 µs of CPU per query in bench/pg.ts) and no canceler either (Effect wraps an `async` that
 * returns one in `onInterrupt`, a mask and a match per statement). Instead the connection counts statements in
 * flight: one that comes back to the pool with a statement still running, because its caller was interrupted, is
 * busy (`Driver.busy`) and the pool invalidates it.
 */
const run = <A = unknown>(
  resolved: Resolved,
  connection: Pg.PgConnection,
  sql: string,
  params: ReadonlyArray<unknown> | undefined,
  operation: Operation,
  /** Applied to the result in the callback, so a caller needs no `Effect.map` step after it. */
  finish: (result: unknown) => A = (result) => result as A
): Effect.Effect<A, PgError> =>
  Effect.async<A, PgError>((resume) => {
    const session = connection as Connection
    const done = (error: Error | null | undefined, result: unknown): void => {
      session.running--
      resume(
        error === null || error === undefined ?
          Effect.succeed(finish(result)) :
          Effect.fail(wrap(operation, resolved.secrets)(error))
      )
    }
    session.running++
    session.lastSql = sql
    try {
      if (params === undefined || params.length === 0) session.client.query(sql, done)
      else session.client.query(sql, params as Array<unknown>, done)
    } catch (error) {
      session.running--
      resume(Effect.fail(wrap(operation, resolved.secrets)(error)))
    }
  })

/**
 * Whether a transaction is open on the session, from the server's last word on it (the status of its last
 * `ReadyForQuery`, kept by node-postgres): "idle, no transaction" is `false`, and then a `ROLLBACK` has nothing to do,
 * so reset-on-return skips its round trip, as psycopg's `rollback()` does. A transaction open (`T`) or aborted (`E`),
 * or a statement still in flight (the pool closes such a connection before any reset), is `true`; a client that does
 * not report its status, `undefined`.
 */
const inTransaction = (connection: Pg.PgConnection): boolean | undefined => {
  const client = connection.client as Partial<Pick<pg.Client, "getTransactionStatus">>
  if (typeof client.getTransactionStatus !== "function") return undefined
  return client.getTransactionStatus() !== "I" || (connection as Connection).running > 0
}

/** @internal */
export const driver = (options?: Pg.PgOptions): Driver<Pg.PgConnection, PgError> => {
  const resolved = resolve(options)
  return driverInternal.make<Pg.PgConnection, PgError>({
    dialect: "postgresql",
    connect: connect(resolved),
    query: (connection, sql, params) => run(resolved, connection, sql, params, "query", rowsOf),
    ping: (connection) => run(resolved, connection, resolved.liveness, undefined, "ping", toVoid),
    begin: (connection) => run(resolved, connection, "BEGIN", undefined, "begin", toVoid),
    commit: (connection) =>
      Effect.flatMap(
        run(resolved, connection, "COMMIT", undefined, "commit"),
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
          run(resolved, connection, "ROLLBACK", undefined, "rollback", toVoid)
      ),
    isDisconnect,
    busy: (connection) => (connection as Connection).busy(),
    inTransaction
  })
}

/** @internal */
export const check = (options?: Pg.PgOptions): Effect.Effect<void, PgError> =>
  Effect.suspend(() => {
    const resolved = resolve(options)
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

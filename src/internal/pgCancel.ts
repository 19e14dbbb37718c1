import * as net from "node:net"

/** The protocol's `CancelRequest` code: 1234 in the high 16 bits, 5678 in the low (`pg-protocol`'s `cancel`). */
const CANCEL_REQUEST_CODE = 80877102

/** Where to send a cancel request, and the key the server gave the session in its `BackendKeyData`. */
export interface CancelTarget {
  /** A host name or address, or the directory of a Unix socket (a path starting with `/`), as node-postgres takes. */
  readonly host: string
  readonly port: number
  readonly processId: number
  readonly secretKey: number
}

/**
 * Sends PostgreSQL's `CancelRequest` for a session over a new connection to its server, as libpq's `PQcancel` and
 * node-postgres's `Client#cancel` do: 16 bytes, no authentication, no answer; the connection stays open until the
 * server closes it. The server (a child of the postmaster)
 * signals the session's backend and then closes the connection, so `settled(undefined)` on that close means the
 * signal was sent: the backend cancels the statement it is running, or ignores the signal if it is idle by then.
 * `settled(error)` means it is unknown whether the signal was sent (the connect failed, or no close came within
 * `timeoutMillis`, after which the socket is destroyed: the socket's own idle timer, cleared with it).
 *
 * Always plain TCP (or a Unix socket): the server accepts a cancel request before any TLS or authentication.
 *
 * @internal
 */
export const sendCancelRequest = (
  target: CancelTarget,
  timeoutMillis: number,
  settled: (error: Error | undefined) => void
): void => {
  const packet = Buffer.alloc(16)
  packet.writeInt32BE(16, 0)
  packet.writeInt32BE(CANCEL_REQUEST_CODE, 4)
  packet.writeInt32BE(target.processId, 8)
  packet.writeInt32BE(target.secretKey, 12)
  const timeout = Math.max(1, Math.ceil(timeoutMillis))
  const socket = target.host.startsWith("/")
    ? net.connect({ path: `${target.host}/.s.PGSQL.${target.port}`, timeout })
    : net.connect({ host: target.host, port: target.port, timeout })
  let failure: Error | undefined
  socket.on("timeout", () => {
    socket.destroy(new Error(`no answer to the cancel request within ${timeout} ms`))
  })
  socket.on("error", (error) => {
    failure ??= error
  })
  socket.once("close", () => settled(failure))
  // write, then wait for the server to close (libpq's way): closing our side at once lets a proxy in between drop the
  // request as coming from a client that left (PgBouncer 1.18 does, and can crash on it)
  socket.write(packet)
  socket.resume()
}

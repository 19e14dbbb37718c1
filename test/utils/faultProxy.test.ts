/**
 * The TCP fault proxy against a tiny echo server on loopback (real sockets, real clock, ≤ 20 s in all): each mode does
 * what it says, switching back to `Pass` heals, `reset` and `killOne` destroy sockets, and the proxy closes
 * everything with its scope.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as net from "node:net"
import { performance } from "node:perf_hooks"
import * as FaultProxy from "./faultProxy.js"

/** An echo server on `127.0.0.1:<random port>`, closed (every socket destroyed) with the scope. */
const echoServer = Effect.acquireRelease(
  Effect.async<{ readonly server: net.Server; readonly sockets: Set<net.Socket>; readonly port: number }>(
    (resume) => {
      const sockets = new Set<net.Socket>()
      const server = net.createServer((socket) => {
        sockets.add(socket)
        socket.on("error", () => undefined)
        socket.on("close", () => sockets.delete(socket))
        socket.pipe(socket)
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        resume(
          Effect.succeed({ server, sockets, port: typeof address === "object" && address !== null ? address.port : 0 })
        )
      })
    }
  ),
  ({ server, sockets }) =>
    Effect.async<void>((resume) => {
      for (const socket of sockets) socket.destroy()
      server.close(() => resume(Effect.void))
    })
)

/** A client socket that records what it receives and how it ended. */
interface Client {
  readonly socket: net.Socket
  readonly received: () => string
  readonly closed: () => boolean
  readonly write: (text: string) => Effect.Effect<void>
}

/** Connects to `port`; fails when the connect fails. Destroyed with the scope. */
const connect = (port: number) =>
  Effect.acquireRelease(
    Effect.async<Client, Error>((resume) => {
      const chunks: Array<Buffer> = []
      let closed = false
      const socket = net.connect({ host: "127.0.0.1", port })
      socket.on("data", (chunk: Buffer) => chunks.push(chunk))
      socket.on("close", () => {
        closed = true
      })
      socket.once("error", (error) => resume(Effect.fail(error)))
      socket.once("connect", () => {
        socket.on("error", () => undefined)
        resume(Effect.succeed({
          socket,
          received: () => Buffer.concat(chunks).toString("utf8"),
          closed: () => closed,
          write: (text) => Effect.sync(() => void socket.write(text))
        }))
      })
    }),
    ({ socket }) => Effect.sync(() => socket.destroy())
  )

/** Polls (every 5 ms, real time) until `condition` holds; dies after `timeout` with `message`. */
const until = (condition: () => boolean, message: string, timeout: Duration.DurationInput = "3 seconds") =>
  Effect.gen(function*() {
    const deadline = performance.now() + Duration.toMillis(Duration.decode(timeout))
    while (!condition()) {
      if (performance.now() > deadline) return yield* Effect.dieMessage(`timed out: ${message}`)
      yield* Effect.sleep("5 millis")
    }
  })

const setup = Effect.gen(function*() {
  const echo = yield* echoServer
  const proxy = yield* FaultProxy.make({ host: "127.0.0.1", port: echo.port })
  return { echo, proxy }
})

describe("FaultProxy", () => {
  it.live("Pass forwards both ways and counts connections", () =>
    Effect.scoped(Effect.gen(function*() {
      const { proxy } = yield* setup
      assert.strictEqual(proxy.host, "127.0.0.1")
      assert.deepStrictEqual(yield* proxy.mode, { _tag: "Pass" })
      const client = yield* connect(proxy.port)
      yield* client.write("hello")
      yield* until(() => client.received() === "hello", "echo through the proxy")
      assert.strictEqual(yield* proxy.connections, 1)
      assert.strictEqual(yield* proxy.accepted, 1)
      const second = yield* connect(proxy.port)
      yield* second.write("again")
      yield* until(() => second.received() === "again", "a second connection")
      assert.strictEqual(yield* proxy.connections, 2)
      assert.strictEqual(yield* proxy.accepted, 2)
      second.socket.end()
      yield* until(() => second.closed(), "a FIN travels through and the connection closes")
      yield* until(() => Effect.runSync(proxy.connections) === 1, "the proxy forgets a closed connection")
    })))

  it.live("Latency delays each chunk in both directions and keeps the order", () =>
    Effect.scoped(Effect.gen(function*() {
      const { proxy } = yield* setup
      const client = yield* connect(proxy.port)
      yield* proxy.set({ _tag: "Latency", millis: 150 })
      const start = performance.now()
      yield* client.write("a")
      yield* Effect.sleep("20 millis")
      yield* client.write("b")
      yield* Effect.sleep("20 millis")
      yield* client.write("c")
      yield* until(() => client.received().length >= 1, "the first byte back")
      const first = performance.now() - start
      yield* until(() => client.received() === "abc", "all three chunks in order")
      assert.isAtLeast(first, 2 * 150 - 10, "a round trip pays the latency twice")
      yield* proxy.set({ _tag: "Pass" })
      const healed = performance.now()
      yield* client.write("d")
      yield* until(() => client.received() === "abcd", "Pass again")
      assert.isBelow(performance.now() - healed, 2 * 150, "Pass no longer delays")
    })))

  it.live("Bandwidth paces each direction to its rate", () =>
    Effect.scoped(Effect.gen(function*() {
      const { proxy } = yield* setup
      const client = yield* connect(proxy.port)
      yield* proxy.set({ _tag: "Bandwidth", bytesPerSecond: 10_000 })
      const payload = "x".repeat(5_000)
      const start = performance.now()
      yield* client.write(payload)
      yield* until(() => client.received().length === payload.length, "the whole payload back", "5 seconds")
      const elapsed = performance.now() - start
      assert.strictEqual(client.received(), payload)
      // 5,000 bytes at 10,000 B/s take 0.5 s each way; the echo streams back as it arrives
      assert.isAtLeast(elapsed, 450, `5,000 bytes at 10,000 B/s took ${elapsed} ms`)
    })))

  it.live("Blackhole holds every byte, accepts new connects silently; Pass delivers what was held", () =>
    Effect.scoped(Effect.gen(function*() {
      const { proxy } = yield* setup
      const held = yield* connect(proxy.port)
      yield* held.write("before")
      yield* until(() => held.received() === "before", "echo before the blackhole")
      yield* proxy.set({ _tag: "Blackhole" })
      yield* held.write("-during")
      const fresh = yield* connect(proxy.port)
      yield* fresh.write("fresh")
      held.socket.end()
      yield* Effect.sleep("300 millis")
      assert.strictEqual(held.received(), "before", "nothing comes back")
      assert.strictEqual(fresh.received(), "", "a new connection is accepted and silent")
      assert.isFalse(held.closed(), "the socket stays open, its FIN held too")
      assert.isFalse(fresh.closed())
      assert.strictEqual(yield* proxy.connections, 2)
      yield* proxy.set({ _tag: "Pass" })
      yield* until(() => held.received() === "before-during", "the held bytes are delivered")
      yield* until(() => fresh.received() === "fresh", "the new connection flows")
      yield* until(() => held.closed(), "the held FIN is delivered and the connection closes")
    })))

  it.live("Refuse destroys new connects at once, existing ones keep flowing; Pass accepts again", () =>
    Effect.scoped(Effect.gen(function*() {
      const { proxy } = yield* setup
      const existing = yield* connect(proxy.port)
      yield* proxy.set({ _tag: "Refuse" })
      const refused = yield* Effect.either(
        connect(proxy.port).pipe(
          Effect.tap((client) => until(() => client.closed(), "a refused connect is destroyed"))
        )
      )
      // the TCP handshake may complete before the proxy destroys the socket: either way it ends at once
      assert.isTrue(refused._tag === "Left" || refused.right.received() === "")
      assert.strictEqual(yield* proxy.refused, 1)
      assert.strictEqual(yield* proxy.accepted, 1)
      yield* existing.write("still")
      yield* until(() => existing.received() === "still", "an existing connection keeps flowing")
      yield* proxy.set({ _tag: "Pass" })
      const after = yield* connect(proxy.port)
      yield* after.write("back")
      yield* until(() => after.received() === "back", "Pass accepts again")
    })))

  it.live("reset destroys every socket and keeps the mode; killOne destroys the oldest", () =>
    Effect.scoped(Effect.gen(function*() {
      const { echo, proxy } = yield* setup
      const clients = [yield* connect(proxy.port), yield* connect(proxy.port), yield* connect(proxy.port)]
      for (const [i, client] of clients.entries()) yield* client.write(`c${i}`)
      yield* until(() => clients.every((client, i) => client.received() === `c${i}`), "three connections flow")
      assert.isTrue(yield* proxy.killOne)
      yield* until(() => clients[0]!.closed(), "the oldest is destroyed")
      assert.isFalse(clients[1]!.closed())
      assert.isFalse(clients[2]!.closed())
      assert.strictEqual(yield* proxy.connections, 2)
      yield* clients[1]!.write("+")
      yield* until(() => clients[1]!.received() === "c1+", "the others still flow")
      yield* until(() => echo.sockets.size === 2, "the upstream side of the killed one is gone too")

      yield* proxy.set({ _tag: "Latency", millis: 20 })
      yield* proxy.reset
      yield* until(() => clients.every((client) => client.closed()), "every client socket is destroyed")
      yield* until(() => echo.sockets.size === 0, "every upstream socket is destroyed")
      assert.strictEqual(yield* proxy.connections, 0)
      assert.isFalse(yield* proxy.killOne, "nothing left to kill")
      assert.deepStrictEqual(yield* proxy.mode, { _tag: "Latency", millis: 20 }, "the mode is unchanged")
      const after = yield* connect(proxy.port)
      yield* after.write("new")
      yield* until(() => after.received() === "new", "new connections still work")
      assert.strictEqual(yield* proxy.accepted, 4)
    })))

  it.live("an upstream that is down: the client's connection is destroyed", () =>
    Effect.scoped(Effect.gen(function*() {
      const { echo } = yield* setup
      const closedPort = yield* Effect.async<number>((resume) => {
        const server = net.createServer()
        server.listen(0, "127.0.0.1", () => {
          const address = server.address()
          const port = typeof address === "object" && address !== null ? address.port : 0
          server.close(() => resume(Effect.succeed(port)))
        })
      })
      assert.notStrictEqual(closedPort, echo.port)
      const proxy = yield* FaultProxy.make({ host: "127.0.0.1", port: closedPort })
      const client = yield* connect(proxy.port)
      yield* until(() => client.closed(), "the client is told")
      yield* until(() => Effect.runSync(proxy.connections) === 0, "the proxy forgets it")
    })))

  it.live("closing the scope destroys every socket and stops listening", () =>
    Effect.scoped(Effect.gen(function*() {
      const echo = yield* echoServer
      const scope = yield* Scope.make()
      const proxy = yield* Scope.extend(FaultProxy.make({ host: "127.0.0.1", port: echo.port }), scope)
      const flowing = yield* connect(proxy.port)
      yield* flowing.write("x")
      yield* until(() => flowing.received() === "x", "a connection flows")
      yield* proxy.set({ _tag: "Blackhole" })
      const held = yield* connect(proxy.port)
      yield* held.write("held")
      yield* until(() => Effect.runSync(proxy.connections) === 2, "two connections")
      yield* Scope.close(scope, Exit.void)
      yield* until(() => flowing.closed() && held.closed(), "every client socket is destroyed")
      yield* until(() => echo.sockets.size === 0, "every upstream socket is destroyed")
      assert.strictEqual(yield* proxy.connections, 0)
      const after = yield* Effect.either(connect(proxy.port))
      assert.isTrue(after._tag === "Left", "nothing listens any more")
    })))
})

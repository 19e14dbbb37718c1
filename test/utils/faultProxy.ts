/**
 * A small TCP fault proxy for tests: it listens on `127.0.0.1:<random port>`, forwards every accepted connection to
 * a target, and can be switched at run time between
 *
 * - `Pass`: bytes flow as they come;
 * - `Latency`: every chunk is delivered `millis` after it arrived, in both directions, order kept;
 * - `Bandwidth`: each direction of each connection is paced to `bytesPerSecond`;
 * - `Blackhole`: sockets stay open and nothing moves either way (bytes, FIN, close); new connects are accepted and
 *   silent. Leaving it resumes the held sockets (buffered bytes are delivered), as a network that heals;
 * - `Refuse`: new connects are destroyed at once (RST); existing connections keep flowing as before.
 *
 * `reset` destroys every socket now (RST), `killOne` the oldest connection. Closing the scope closes the listener
 * and destroys every socket. Written with `node:net` only; no vitest in here (`bench/` may import it).
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as net from "node:net"
import { performance } from "node:perf_hooks"

/** What the proxy does with the bytes of its connections (and with new connects, for `Refuse`). */
export type Mode =
  | { readonly _tag: "Pass" }
  | { readonly _tag: "Latency"; readonly millis: number }
  | { readonly _tag: "Bandwidth"; readonly bytesPerSecond: number }
  | { readonly _tag: "Blackhole" }
  | { readonly _tag: "Refuse" }

/** Where the proxy forwards to. */
export interface Target {
  readonly host: string
  readonly port: number
}

/** A running proxy (see the module's JSDoc). */
export interface FaultProxy {
  /** Always `127.0.0.1`. */
  readonly host: string
  /** Where clients connect. */
  readonly port: number
  /** Switches the mode; held and delayed bytes are rescheduled under the new mode at once. */
  readonly set: (mode: Mode) => Effect.Effect<void>
  /** The mode last set. */
  readonly mode: Effect.Effect<Mode>
  /** Destroys every live socket now (RST); the mode is unchanged. */
  readonly reset: Effect.Effect<void>
  /** Destroys the oldest live connection (RST); `false` when there was none. */
  readonly killOne: Effect.Effect<boolean>
  /** Live proxied connections. */
  readonly connections: Effect.Effect<number>
  /** Connections accepted since start (refused ones not counted). */
  readonly accepted: Effect.Effect<number>
  /** Connects destroyed at once because the mode was `Refuse`. */
  readonly refused: Effect.Effect<number>
}

/** The proxy could not listen. */
export class FaultProxyError extends Data.TaggedError("FaultProxyError")<{
  readonly message: string
  readonly cause?: unknown
}> {}

/** Above this many queued bytes in one direction, the sending socket is paused (as a full TCP window). */
const HIGH_WATER = 1 << 20

type Item =
  | { readonly _tag: "Data"; data: Buffer; readonly at: number }
  | { readonly _tag: "End" }
  | { readonly _tag: "Close"; readonly clean: boolean }

/** One direction of one connection: the bytes read from `source`, waiting to be written to `destination`. */
interface Direction {
  readonly source: net.Socket
  readonly destination: net.Socket
  readonly queue: Array<Item>
  queued: number
  timer: ReturnType<typeof setTimeout> | undefined
  draining: boolean
  /** Bandwidth pacing: when the next slice may go. */
  nextAt: number
  /** `false` while `destination` is still connecting (the upstream side). */
  ready: boolean
}

interface Connection {
  readonly client: net.Socket
  readonly upstream: net.Socket
  readonly up: Direction
  readonly down: Direction
  dead: boolean
}

const destroy = (socket: net.Socket): void => {
  if (socket.destroyed) return
  try {
    socket.resetAndDestroy()
  } catch {
    socket.destroy()
  }
}

/**
 * Starts a proxy to `target` in the current scope; closing the scope closes the listener and destroys every socket.
 */
export const make = (target: Target): Effect.Effect<FaultProxy, FaultProxyError, Scope.Scope> =>
  Effect.gen(function*() {
    let mode: Mode = { _tag: "Pass" }
    /** The mode bytes follow: `Refuse` only changes what happens to new connects. */
    let flow: Exclude<Mode, { _tag: "Refuse" }> = { _tag: "Pass" }
    let accepted = 0
    let refused = 0
    let closed = false
    const live = new Set<Connection>()

    const pump = (direction: Direction, connection: Connection): void => {
      if (connection.dead || direction.timer !== undefined || direction.draining) return
      const { destination, queue } = direction
      while (queue.length > 0) {
        if (!direction.ready || flow._tag === "Blackhole") return
        if (destination.destroyed) {
          queue.length = 0
          direction.queued = 0
          return
        }
        const item = queue[0]!
        if (item._tag === "End") {
          queue.shift()
          destination.end()
          continue
        }
        if (item._tag === "Close") {
          queue.length = 0
          if (item.clean) destination.destroySoon()
          else destroy(destination)
          return
        }
        const now = performance.now()
        let chunk = item.data
        if (flow._tag === "Latency") {
          const due = item.at + flow.millis
          if (now < due) {
            direction.timer = setTimeout(() => {
              direction.timer = undefined
              pump(direction, connection)
            }, Math.ceil(due - now))
            return
          }
          queue.shift()
        } else if (flow._tag === "Bandwidth") {
          if (now < direction.nextAt) {
            direction.timer = setTimeout(() => {
              direction.timer = undefined
              pump(direction, connection)
            }, Math.ceil(direction.nextAt - now))
            return
          }
          const slice = Math.max(1, Math.floor(flow.bytesPerSecond / 50))
          if (chunk.length > slice) {
            item.data = chunk.subarray(slice)
            chunk = chunk.subarray(0, slice)
          } else {
            queue.shift()
          }
          direction.nextAt = Math.max(direction.nextAt, now) + (chunk.length * 1000) / flow.bytesPerSecond
        } else {
          queue.shift()
        }
        direction.queued -= chunk.length
        if (direction.queued < HIGH_WATER && direction.source.isPaused()) direction.source.resume()
        if (destination.writableEnded) continue
        if (!destination.write(chunk)) {
          direction.draining = true
          destination.once("drain", () => {
            direction.draining = false
            pump(direction, connection)
          })
          return
        }
      }
    }

    const reschedule = (): void => {
      for (const connection of live) {
        for (const direction of [connection.up, connection.down]) {
          if (direction.timer !== undefined) {
            clearTimeout(direction.timer)
            direction.timer = undefined
          }
          if (flow._tag !== "Bandwidth") direction.nextAt = 0
          pump(direction, connection)
        }
      }
    }

    const kill = (connection: Connection): void => {
      if (connection.dead) return
      connection.dead = true
      live.delete(connection)
      for (const direction of [connection.up, connection.down]) {
        if (direction.timer !== undefined) clearTimeout(direction.timer)
        direction.timer = undefined
        direction.queue.length = 0
      }
      destroy(connection.client)
      destroy(connection.upstream)
    }

    const wire = (connection: Connection, direction: Direction, reverse: Direction): void => {
      const { source } = direction
      let ended = false
      source.on("data", (data: Buffer) => {
        direction.queue.push({ _tag: "Data", data, at: performance.now() })
        direction.queued += data.length
        if (direction.queued >= HIGH_WATER) source.pause()
        pump(direction, connection)
      })
      source.on("end", () => {
        ended = true
        direction.queue.push({ _tag: "End" })
        pump(direction, connection)
      })
      source.on("error", () => undefined)
      source.on("close", () => {
        // nothing can reach a closed socket any more; its close travels to the other side under the current mode,
        // as a FIN after the bytes when it ended cleanly, as an RST when it did not
        reverse.queue.length = 0
        reverse.queued = 0
        direction.queue.push({ _tag: "Close", clean: ended })
        pump(direction, connection)
        if (connection.client.destroyed && connection.upstream.destroyed) kill(connection)
      })
    }

    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (client) => {
      if (closed || mode._tag === "Refuse") {
        refused += closed ? 0 : 1
        client.on("error", () => undefined)
        destroy(client)
        return
      }
      accepted += 1
      client.setNoDelay(true)
      const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true })
      const direction = (source: net.Socket, destination: net.Socket, ready: boolean): Direction => ({
        source,
        destination,
        queue: [],
        queued: 0,
        timer: undefined,
        draining: false,
        nextAt: 0,
        ready
      })
      const connection: Connection = {
        client,
        upstream,
        up: direction(client, upstream, false),
        down: direction(upstream, client, true),
        dead: false
      }
      live.add(connection)
      upstream.once("connect", () => {
        connection.up.ready = true
        pump(connection.up, connection)
      })
      wire(connection, connection.up, connection.down)
      wire(connection, connection.down, connection.up)
    })
    server.on("error", () => undefined)

    const port = yield* Effect.acquireRelease(
      Effect.async<number, FaultProxyError>((resume) => {
        const onError = (cause: Error) =>
          resume(
            Effect.fail(new FaultProxyError({ message: `the fault proxy cannot listen: ${cause.message}`, cause }))
          )
        server.once("error", onError)
        server.listen(0, "127.0.0.1", () => {
          server.off("error", onError)
          const address = server.address()
          resume(Effect.succeed(typeof address === "object" && address !== null ? address.port : 0))
        })
      }),
      () =>
        Effect.async<void>((resume) => {
          closed = true
          for (const connection of [...live]) kill(connection)
          server.close(() => resume(Effect.void))
        })
    )

    const proxy: FaultProxy = {
      host: "127.0.0.1",
      port,
      set: (next) =>
        Effect.sync(() => {
          mode = next
          if (next._tag !== "Refuse") flow = next
          reschedule()
        }),
      mode: Effect.sync(() => mode),
      reset: Effect.sync(() => {
        for (const connection of [...live]) kill(connection)
      }),
      killOne: Effect.sync(() => {
        const oldest = live.values().next()
        if (oldest.done === true) return false
        kill(oldest.value)
        return true
      }),
      connections: Effect.sync(() => live.size),
      accepted: Effect.sync(() => accepted),
      refused: Effect.sync(() => refused)
    }
    return proxy
  })

/**
 * Where a secret can be found from a value: every object reachable from it by any property path (own keys by
 * `Reflect.ownKeys`, so non-enumerable and symbol keys too; getters, called and their throws ignored; the own fields of
 * its prototypes up to `Object.prototype` / `Function.prototype`; `Map` / `Set` entries; array items; the bytes of
 * buffers), with a visited set. Closures and `#private` fields are out of reach of any property path, by design.
 *
 * No vitest in here, like the other helpers.
 */
import * as util from "node:util"

const stops: ReadonlySet<unknown> = new Set([Object.prototype, Function.prototype, Array.prototype])

const describeKey = (key: PropertyKey): string => typeof key === "symbol" ? `[${String(key)}]` : `.${String(key)}`

/**
 * The path (from `$`) at which `secret` occurs in a string reachable from `value`, or `undefined` when none does.
 */
export const reaches = (value: unknown, secret: string): string | undefined => {
  if (secret.length === 0) throw new Error("reaches: an empty secret is everywhere")
  const visited = new Set<object>()
  const queue: Array<readonly [unknown, string]> = [[value, "$"]]
  while (queue.length > 0) {
    const [current, path] = queue.shift()!
    if (typeof current === "string") {
      if (current.includes(secret)) return path
      continue
    }
    if ((typeof current !== "object" && typeof current !== "function") || current === null) continue
    if (visited.has(current) || stops.has(current)) continue
    visited.add(current)
    if (ArrayBuffer.isView(current)) {
      const bytes = Buffer.from(current.buffer, current.byteOffset, current.byteLength)
      if (bytes.includes(secret) || bytes.includes(Buffer.from(secret, "utf16le"))) return `${path} (bytes)`
      continue
    }
    if (current instanceof Map) {
      let i = 0
      for (const [k, v] of current) {
        queue.push([k, `${path}<key ${i}>`], [v, `${path}<value ${i}>`])
        i++
      }
    } else if (current instanceof Set) {
      let i = 0
      for (const v of current) queue.push([v, `${path}<item ${i++}>`])
    }
    // own properties of the object, then the own properties of each prototype (getters called on the object itself)
    let holder: object | null = current
    let depth = 0
    while (holder !== null && !stops.has(holder)) {
      const prefix = depth === 0 ? path : `${path}<proto ${depth}>`
      for (const key of Reflect.ownKeys(holder)) {
        if (typeof key === "string" && key.includes(secret)) return `${prefix}${describeKey(key)} (key)`
        const descriptor = Reflect.getOwnPropertyDescriptor(holder, key)
        if (descriptor === undefined) continue
        if ("value" in descriptor) queue.push([descriptor.value, `${prefix}${describeKey(key)}`])
        if (descriptor.get !== undefined) {
          try {
            queue.push([descriptor.get.call(current), `${prefix}${describeKey(key)} (getter)`])
          } catch {
            // a getter that refuses this receiver reaches nothing
          }
        }
        if (descriptor.set !== undefined) queue.push([descriptor.set, `${prefix}${describeKey(key)} (setter)`])
      }
      holder = Reflect.getPrototypeOf(holder)
      depth++
      if (holder !== null && !stops.has(holder)) queue.push([holder, `${path}<proto ${depth}>`])
    }
  }
  return undefined
}

/** `JSON.stringify`, or the message of its failure (a circular structure, a BigInt) for values it refuses. */
export const json = (value: unknown): string => {
  try {
    return JSON.stringify(value) ?? "undefined"
  } catch (error) {
    return `<JSON.stringify failed: ${String(error)}>`
  }
}

/**
 * Every way `secret` is found from `value`: by a property path (`reaches`), in `util.inspect` with hidden fields, in
 * `String(value)` and in `JSON.stringify`. An empty array when it is found in none.
 */
export const leaks = (value: unknown, secret: string): ReadonlyArray<string> => {
  const found: Array<string> = []
  const path = reaches(value, secret)
  if (path !== undefined) found.push(`property path ${path}`)
  if (util.inspect(value, { depth: 10, showHidden: true, getters: true }).includes(secret)) found.push("util.inspect")
  let text: string
  try {
    text = String(value)
  } catch {
    text = ""
  }
  if (text.includes(secret)) found.push("String()")
  if (json(value).includes(secret)) found.push("JSON.stringify")
  return found
}

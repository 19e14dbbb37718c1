/**
 * A forced garbage collection for the tests that measure the heap: `global.gc` from `--expose-gc` when the process
 * has it, else exposed at run time (`v8.setFlagsFromString` then `vm.runInNewContext("gc")`); `undefined` if neither
 * works.
 *
 * No vitest in here, like the other helpers.
 */
import * as v8 from "node:v8"
import * as vm from "node:vm"

export const gc: (() => void) | undefined = (() => {
  const existing = (globalThis as { gc?: unknown }).gc
  if (typeof existing === "function") return existing as () => void
  try {
    v8.setFlagsFromString("--expose-gc")
    const exposed: unknown = vm.runInNewContext("gc")
    return typeof exposed === "function" ? (exposed as () => void) : undefined
  } catch {
    return undefined
  }
})()

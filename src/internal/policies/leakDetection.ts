import type * as Duration from "effect/Duration"
import type * as Policy from "../../Policy.js"

/** @internal */
export const leakDetection = <C = never, E = never>(
  _threshold: Duration.DurationInput,
  _options?: { readonly reclaim?: boolean | undefined; readonly trace?: "span" | "stack" | undefined }
): Policy.Policy<C, E, Policy.LeakCommands> => {
  throw new Error("leakDetection: not built yet")
}

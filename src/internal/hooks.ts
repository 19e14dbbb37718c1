import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Driver from "../Driver.js"
import type * as Policy from "../Policy.js"
import type { Item } from "./item.js"

/**
 * Runs hooks in order, calling them now, at the checkout or return: while a hook answers `Effect.void` (done,
 * nothing to run) the next is called at once; from the first that answers anything else, the rest run after it,
 * each after the one before. `undefined` when every hook was done at once. A hook that throws instead of answering
 * fails with the defect, as it would inside a step.
 *
 * @internal
 */
export const chainHooks = <H, X, F>(
  hooks: ReadonlyArray<H>,
  call: (hook: H, context: X) => Effect.Effect<void, F>,
  context: X
): Effect.Effect<void, F> | undefined => {
  for (let i = 0; i < hooks.length; i++) {
    let effect: Effect.Effect<void, F>
    try {
      effect = call(hooks[i]!, context)
    } catch (defect) {
      effect = Effect.die(defect)
    }
    if (effect === Effect.void) continue
    for (let j = i + 1; j < hooks.length; j++) {
      const hook = hooks[j]!
      effect = Effect.zipRight(effect, Effect.suspend(() => call(hook, context)))
    }
    return effect
  }
  return undefined
}

/** @internal */
export const checkoutHook = <C, E>(hooks: Policy.Hooks<C, E>, context: Policy.HookContext<C, E>) =>
  hooks.onCheckout!(context)

/** @internal */
export const returnHook = <C, E>(hooks: Policy.Hooks<C, E>, context: Policy.ReturnContext<C, E>) =>
  hooks.onReturn!(context)

/** @internal */
export const prepareHook = <C, E>(hooks: Policy.Hooks<C, E>, context: Policy.HookContext<C, E>) =>
  hooks.prepare!(context)

/**
 * What a hook receives. A class, so every context has one shape: hooks read it on every checkout, and a spread
 * object literal per call made those reads slow.
 *
 * @internal
 */
export class HookContextImpl<C, E> implements Policy.HookContext<C, E> {
  readonly connection: C
  readonly record: Item<C>["record"]
  constructor(
    item: Item<C>,
    readonly driver: Driver.Driver<C, E>,
    _now: number,
    owner: HookOwner<C, E>
  ) {
    this.connection = item.connection
    this.record = item.record
    this.#owner = owner
  }
  // private: a hook gets the context, never the pool behind it
  readonly #owner: HookOwner<C, E>
  /**
   * The pool's clock now, read at each use: a hook listed after a slow one (a validation that took a second) must
   * not judge a connection's age or idleness by the time the checks started.
   */
  get now(): number {
    return this.#owner.now()
  }
  // getters, so that a context costs no closures unless a hook asks for one (and a hook may still pass
  // `context.markValidated` around unbound)
  get markValidated(): () => void {
    return () => {
      this.record.lastValidatedAt = this.#owner.now()
    }
  }
  get ping(): () => Effect.Effect<void, E> {
    return () => {
      const liveness = this.#owner.liveness
      return liveness === undefined ? this.driver.ping(this.connection) : call(liveness.liveness!.bind(liveness), this)
    }
  }
}

/** What a hook context needs of its pool: its clock, and the policy that gives the liveness check, if any. */
export interface HookOwner<C, E> {
  now(): number
  readonly liveness: Policy.Hooks<C, E> | undefined
}

/**
 * What a return hook receives: the hook context and how the borrower's work ended.
 *
 * @internal
 */
export class ReturnContextImpl<C, E> extends HookContextImpl<C, E> implements Policy.ReturnContext<C, E> {
  constructor(
    item: Item<C>,
    driver: Driver.Driver<C, E>,
    now: number,
    owner: HookOwner<C, E>,
    readonly exit: Exit.Exit<unknown, unknown>
  ) {
    super(item, driver, now, owner)
  }
}

/**
 * Calls a user function that should answer an Effect; a throw becomes the defect it is, inside the Effect, so that
 * whatever it does the caller's clean-up runs.
 *
 * @internal
 */
export const call = <A, B, E, R>(f: (a: A) => Effect.Effect<B, E, R>, a: A): Effect.Effect<B, E, R> => {
  try {
    return f(a)
  } catch (defect) {
    return Effect.die(defect)
  }
}

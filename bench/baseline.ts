/**
 * The library the `baseline/*` subjects of `npm run bench -- --baseline DIR` run: a stand-in that `bench/bundle.ts`
 * replaces, when the worker is bundled with a baseline, by `DIR/Pool.ts` and `DIR/Policy.ts` (the `src/` of another
 * checkout, e.g. `git worktree add /work/before <commit>`). Bundled without one, it is this checkout's own `src/`, so
 * `--pools effect-reservoir/use,baseline/use` alone measures the same code twice: an A/A check of the run's noise.
 *
 * Typed as this checkout's API; the baseline is called the same way and its own types are not checked.
 */
export * as Policy from "../src/Policy.js"
export * as Pool from "../src/Pool.js"

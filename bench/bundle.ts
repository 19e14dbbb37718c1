/**
 * Bundling for the benchmarks. Measured code should be what a user runs: JavaScript compiled ahead of time, not
 * `tsx`, whose esbuild transform keeps function names by wrapping closures in a `__name(...)` call each time one is
 * created (profiled at about 0.5 µs per query on the PostgreSQL path, none of which a user pays).
 *
 * `npx tsx bench/bundle.ts bench/pg.ts [args]` bundles an entry once into `bench/results/.build/` and runs it with
 * `args`, passing the repository root in `BENCH_ROOT` (a bundle no longer sits next to its sources).
 */
import type { Plugin } from "esbuild"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { root } from "./paths.js"

/**
 * Bundles `entry` (with `src/`, Effect and everything else it imports; `pg` stays external) to `outfile`.
 *
 * With `baselineSrc` (the `src/` directory of another checkout), the module `./baseline.js` imported by
 * `bench/worker.ts` (`bench/baseline.ts`, this checkout's `src/` otherwise) is replaced by that directory's `Pool.ts`
 * and `Policy.ts`, bundled the same way as ours, in the same bundle. Their imports of `effect` resolve through that
 * checkout's `node_modules` (symlink it to this one's): esbuild follows the symlink to the real path, so both
 * libraries share one copy of Effect, as two versions of a library in one program would.
 */
export const bundle = async (
  entry: string,
  outfile: string,
  format: "cjs" | "esm",
  baselineSrc?: string
): Promise<void> => {
  const esbuild = await import("esbuild")
  const baseline: Array<Plugin> = baselineSrc === undefined ? [] : [{
    name: "bench-baseline",
    setup(build) {
      build.onResolve(
        { filter: /^\.\/baseline\.js$/ },
        (args) =>
          path.basename(args.importer) === "worker.ts"
            ? { path: path.join(baselineSrc, "baseline.ts"), namespace: "bench-baseline" }
            : undefined
      )
      build.onLoad({ filter: /.*/, namespace: "bench-baseline" }, () => ({
        contents: [
          `export * as Policy from ${JSON.stringify(path.join(baselineSrc, "Policy.ts"))}`,
          `export * as Pool from ${JSON.stringify(path.join(baselineSrc, "Pool.ts"))}`
        ].join("\n"),
        resolveDir: baselineSrc,
        loader: "ts"
      }))
    }
  }]
  await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: "node",
    format,
    target: "node20",
    outfile,
    external: ["pg", "pg-native"],
    plugins: baseline,
    // CommonJS dependencies bundled into an ES module still call `require` for Node's built-ins
    banner: format === "esm"
      ? {
        js:
          "import { createRequire as __benchRequire } from 'node:module'; const require = __benchRequire(import.meta.url);"
      }
      : {},
    logLevel: "error"
  })
}

const main = async (entry: string, args: ReadonlyArray<string>): Promise<number> => {
  const out = path.join(root, "bench", "results", ".build", `${path.basename(entry, ".ts")}.mjs`)
  await bundle(path.resolve(entry), out, "esm")
  const child = spawn(process.execPath, [out, ...args], {
    stdio: "inherit",
    env: { ...process.env, BENCH_ROOT: root }
  })
  // the child handles SIGINT itself (it stops its PostgreSQL cluster); wait for it
  process.on("SIGINT", () => undefined)
  process.on("SIGTERM", () => child.kill("SIGTERM"))
  return new Promise((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal === null ? 1 : 128))))
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [entry, ...args] = process.argv.slice(2)
  if (entry === undefined) {
    process.stderr.write("usage: tsx bench/bundle.ts <entry.ts> [args]\n")
    process.exit(2)
  }
  main(entry, args).then((code) => process.exit(code), (error) => {
    process.stderr.write(`${String(error)}\n`)
    process.exit(1)
  })
}

/**
 * Where the repository is, for the benchmarks: `BENCH_ROOT` when set (a bundle in `bench/results/.build/` is not next
 * to its sources), else the parent of this file's directory.
 */
import * as path from "node:path"
import { fileURLToPath } from "node:url"

export const root: string = process.env["BENCH_ROOT"] ??
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
export const benchDir: string = path.join(root, "bench")
export const resultsDir: string = path.join(benchDir, "results")

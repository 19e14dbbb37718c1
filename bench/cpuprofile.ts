/**
 * Where a benchmark's CPU went: `npx tsx bench/cpuprofile.ts <file.cpuprofile> [queries] [--top N]`.
 *
 * Reads a profile written by `node --cpu-prof` and prints self time by category: the socket write (`writeBuffer`,
 * which on loopback includes the kernel's TCP work for both ends), the bundle (Effect, effect-reservoir and the
 * harness, all in `bench/results/.build/*`), the `pg` library, the rest of Node, the garbage collector and idle. With
 * `queries` (completed while the profile ran) it also prints µs per query; with `--top N`, the N functions with the
 * most self time. Profile a PostgreSQL subject with, for example:
 *
 *     npm run bench:pg -- --quick   # builds bench/results/.build/pg.mjs
 *     BENCH_ROOT=$PWD node --cpu-prof --cpu-prof-dir=.dbg/prof bench/results/.build/pg.mjs --rounds 1 \
 *       --scenarios 64/8 --queries "SELECT 1" --subjects effect-reservoir+pg --measure 10000
 */
import * as fs from "node:fs"

interface CallFrame {
  readonly functionName: string
  readonly url: string
  readonly lineNumber: number
}
interface Profile {
  readonly nodes: ReadonlyArray<{ readonly id: number; readonly callFrame: CallFrame }>
  readonly samples: ReadonlyArray<number>
  readonly timeDeltas: ReadonlyArray<number>
}

const category = (frame: CallFrame): string => {
  if (frame.functionName === "(idle)") return "idle"
  if (frame.functionName === "(garbage collector)") return "garbage collector"
  if (frame.functionName === "writeBuffer") return "socket write (writeBuffer, kernel included)"
  if (frame.url.includes("/bench/results/.build/")) return "bundle (Effect, effect-reservoir, harness)"
  if (frame.url.includes("node_modules/pg")) return "pg library (pg, pg-protocol)"
  return "Node and native, other"
}

const main = (args: ReadonlyArray<string>) => {
  const file = args[0]
  if (file === undefined) {
    process.stderr.write("usage: tsx bench/cpuprofile.ts <file.cpuprofile> [queries] [--top N]\n")
    return 2
  }
  const topAt = args.indexOf("--top")
  const top = topAt >= 0 ? Number(args[topAt + 1]) : 0
  const queries = args[1] !== undefined && args[1] !== "--top" ? Number(args[1]) : undefined
  const profile = JSON.parse(fs.readFileSync(file, "utf8")) as Profile
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]))
  const byCategory = new Map<string, number>()
  const byFunction = new Map<string, number>()
  let total = 0
  profile.samples.forEach((id, i) => {
    const frame = frames.get(id)
    const us = profile.timeDeltas[i] ?? 0
    if (frame === undefined) return
    total += us
    const c = category(frame)
    byCategory.set(c, (byCategory.get(c) ?? 0) + us)
    const f = `${frame.functionName || "(anonymous)"} ${frame.url.split("/").pop() ?? ""}:${frame.lineNumber + 1}`
    byFunction.set(f, (byFunction.get(f) ?? 0) + us)
  })
  const line = (label: string, us: number) =>
    `${(us / 1000).toFixed(0).padStart(7)} ms ${(100 * us / total).toFixed(1).padStart(5)}%${
      queries === undefined ? "" : ` ${(us / queries).toFixed(2).padStart(6)} µs/query`
    }  ${label}`
  for (const [c, us] of [...byCategory].sort((a, b) => b[1] - a[1])) process.stdout.write(line(c, us) + "\n")
  if (top > 0) {
    process.stdout.write("\n")
    for (const [f, us] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      process.stdout.write(line(f, us) + "\n")
    }
  }
  return 0
}

process.exitCode = main(process.argv.slice(2))

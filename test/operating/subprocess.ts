/**
 * Runs an example as its own Node process (`node --import tsx`, one process, so a signal reaches the program
 * itself), collecting what it prints. No vitest in here.
 */
import { spawn } from "node:child_process"
import * as path from "node:path"

export interface Finished {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

export interface Running {
  readonly pid: number
  /** Resolves with everything printed so far once a line of stdout includes `text`; rejects if the process ends first. */
  readonly waitFor: (text: string) => Promise<string>
  readonly kill: (signal: NodeJS.Signals) => void
  readonly finished: Promise<Finished>
}

const root = path.join(import.meta.dirname, "..", "..")

export const run = (example: string, env: Readonly<Record<string, string>> = {}): Running => {
  const child = spawn(process.execPath, ["--import", "tsx", path.join(root, example)], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let stdout = ""
  let stderr = ""
  const watchers: Array<() => void> = []
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk
    for (const watcher of watchers.slice()) watcher()
  })
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk
  })
  const finished = new Promise<Finished>((resolve) => {
    child.on("exit", (code, signal) => {
      // the streams may still hold the last lines
      setImmediate(() => resolve({ code, signal, stdout, stderr }))
    })
  })
  return {
    pid: child.pid!,
    waitFor: (text) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (stdout.includes(text)) {
            watchers.splice(watchers.indexOf(check), 1)
            resolve(stdout)
          }
        }
        watchers.push(check)
        check()
        finished.then(({ code, stderr }) =>
          reject(new Error(`${example} ended (code ${code}) before printing "${text}":\n${stdout}\n${stderr}`))
        )
      }),
    kill: (signal) => {
      child.kill(signal)
    },
    finished
  }
}

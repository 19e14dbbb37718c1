/**
 * The lines the SIGTERM example prints on every run, whatever the driver (their order between fibers may vary); shared
 * by test/operating/shutdown.test.ts and shutdown.pg.test.ts. Kept out of a test file: importing one would run its
 * tests again.
 */
import * as shutdownSigterm from "../../examples/operating/shutdown-sigterm.js"

export const expectedLines = [
  `serving: 2 workers, a request loop and a report on pool "${shutdownSigterm.poolName}", ready: true`,
  "interrupted: closing the pool",
  "worker 1: interrupted, its connection returned",
  "worker 2: interrupted, its connection returned",
  "request: the one in flight at SIGTERM finished",
  `request loop stopped: PoolClosedError: Pool "${shutdownSigterm.poolName}" is closed`
]

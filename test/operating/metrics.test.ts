/**
 * docs/operating.md's Prometheus export: the example's `NodeSdk` layer with the Prometheus exporter serves the
 * pool's metrics on loopback; a scrape with `fetch` shows every `db_client_connection_*` family the page lists (the
 * page's table must equal the scrape), each sample tagged with the pool's name, and the server stops with the layer.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import * as metricsPrometheus from "../../examples/operating/metrics-prometheus.js"
import { freeLoopbackPort } from "../utils/postgres.js"

/** The page's table of families: `| \`name\` | type | ... |` rows between the markers. */
const listedOnThePage = (): Array<string> => {
  const page = fs.readFileSync(path.join(import.meta.dirname, "..", "..", "docs", "operating.md"), "utf8")
  const table = /<!-- prometheus-names -->\n([\s\S]*?)<!-- \/prometheus-names -->/.exec(page)
  assert.isNotNull(table, "docs/operating.md has the <!-- prometheus-names --> table")
  return Array.from(
    table![1]!.matchAll(/^\| `(db_client_connection_\w+)` \| (\w+) \|/gm),
    ([, name, type]) => `${name} ${type}`
  ).sort()
}

const scrape = (url: string) => Effect.promise(() => fetch(url).then((response) => response.text()))

describe("metrics export to Prometheus", () => {
  it.live("serves the pool's metrics on /metrics, under the Prometheus names the page lists", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freeLoopbackPort)
      const url = `http://127.0.0.1:${port}/metrics`
      const text = yield* Effect.scoped(Effect.gen(function*() {
        yield* Layer.build(metricsPrometheus.MetricsLive(port))
        yield* metricsPrometheus.workload
        return yield* scrape(url)
      }))

      const families = Array.from(
        text.matchAll(/^# TYPE (db_client_connection_\w+) (\w+)$/gm),
        ([, name, type]) => `${name} ${type}`
      ).sort()
      assert.deepStrictEqual(families, listedOnThePage())
      assert.strictEqual(families.length, 11)

      // every sample of those families carries the pool's name
      const samples = text.split("\n").filter((line) => line.startsWith("db_client_connection_"))
      for (const sample of samples) assert.include(sample, "db_client_connection_pool_name=\"orders\"", sample)
      for (
        const expected of [
          "db_client_connection_count{db_client_connection_pool_name=\"orders\",db_client_connection_state=\"idle\"",
          "db_client_connection_count{db_client_connection_pool_name=\"orders\",db_client_connection_state=\"used\"",
          "db_client_connection_closes_total{db_client_connection_pool_name=\"orders\",reason=\"overflow\"",
          "db_client_connection_max{db_client_connection_pool_name=\"orders\"",
          "db_client_connection_wait_time_bucket{db_client_connection_pool_name=\"orders\"",
          "db_client_connection_timeouts_total{db_client_connection_pool_name=\"orders\",otel_scope_name=\"@effect/opentelemetry/Metrics\"} 1",
          "db_client_connection_connect_failures_total{db_client_connection_pool_name=\"orders\",otel_scope_name=\"@effect/opentelemetry/Metrics\"} 1",
          "db_client_connection_max{db_client_connection_pool_name=\"orders\",otel_scope_name=\"@effect/opentelemetry/Metrics\"} 3"
        ]
      ) assert.include(text, expected)
      assert.match(text, /^target_info\{service_name="orders-api",/m)

      // the layer's scope has closed: the exporter's server is stopped
      const after = yield* Effect.either(Effect.tryPromise(() => fetch(url)))
      assert.strictEqual(after._tag, "Left")
    }))
})

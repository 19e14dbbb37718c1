/**
 * Every TypeScript snippet the docs show compiles. The blocks quoted from a file with `<!-- example: ... -->` or
 * `<!-- excerpt: ... -->` are that file (test/examples.test.ts checks it, `tsc` compiles it); every other ```ts
 * block is compiled here, each as a module of its own, with the project's compiler options and
 * `effect-reservoir` / `effect-reservoir/*` resolved to src/, as a user's code resolves the package.
 */
import { assert, describe, it } from "@effect/vitest"
import * as path from "node:path"
import ts from "typescript"
import { type Block, blocks, pages, root } from "./utils/markdown.js"

const isTypeScript = (block: Block) => block.tag === "ts" || block.tag === "typescript"
const isQuoted = (block: Block) => block.marker?.kind === "example" || block.marker?.kind === "excerpt"

/** Where a snippet lives while it is compiled: beside the pages, so it is an ES module of this package. */
const fileOf = (block: Block) =>
  path.join(root, "docs", "__snippets__", `${block.page.replace(/[/\\.]/g, "_")}_${block.line}.ts`)

const all = pages().flatMap(blocks)
const snippets = all.filter((block) => isTypeScript(block) && !isQuoted(block))

let compiled: Map<string, Array<string>> | undefined

/** Compiles every snippet in one program; the errors of each, by file, as `page:line: message`. */
const compile = (): Map<string, Array<string>> => {
  if (compiled !== undefined) return compiled
  const config = ts.readConfigFile(path.join(root, "tsconfig.json"), ts.sys.readFile)
  const { options } = ts.parseJsonConfigFileContent(config.config, ts.sys, root)
  const compilerOptions: ts.CompilerOptions = {
    ...options,
    noEmit: true,
    // a snippet may show a value without using it
    noUnusedLocals: false,
    noUnusedParameters: false,
    paths: { "effect-reservoir": ["./src/index.ts"], "effect-reservoir/*": ["./src/*.ts"] }
  }
  const sources = new Map(snippets.map((block) => [fileOf(block), block]))
  const host = ts.createCompilerHost(compilerOptions)
  const getSourceFile = host.getSourceFile
  host.getSourceFile = (fileName, languageVersion, ...rest) => {
    const block = sources.get(path.resolve(fileName))
    return block === undefined
      ? getSourceFile.call(host, fileName, languageVersion, ...rest)
      : ts.createSourceFile(fileName, block.code, languageVersion, true)
  }
  const fileExists = host.fileExists
  host.fileExists = (fileName) => sources.has(path.resolve(fileName)) || fileExists.call(host, fileName)
  const readFile = host.readFile
  host.readFile = (fileName) => sources.get(path.resolve(fileName))?.code ?? readFile.call(host, fileName)
  const program = ts.createProgram([...sources.keys()], compilerOptions, host)
  const errors = new Map<string, Array<string>>()
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const file = diagnostic.file === undefined ? undefined : path.resolve(diagnostic.file.fileName)
    const block = file === undefined ? undefined : sources.get(file)
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n")
    if (block === undefined) {
      // an error outside the snippets (a snippet's import pulled in a file that does not compile)
      const where = file === undefined ? "" : `${path.relative(root, file)}: `
      errors.set("", [...(errors.get("") ?? []), `${where}${message}`])
      continue
    }
    const { line } = diagnostic.file!.getLineAndCharacterOfPosition(diagnostic.start ?? 0)
    errors.set(file!, [...(errors.get(file!) ?? []), `${block.page}:${block.line + 1 + line}: ${message}`])
  }
  compiled = errors
  return errors
}

/** What TypeScript looks like, for a block fenced as something else. */
const looksLikeTypeScript = (code: string) =>
  /^\s*import\s.+\sfrom\s+["']/m.test(code) ||
  /^\s*export\s+(const|function|class|interface|type)\s/m.test(code) ||
  /\bEffect\.(gen|runPromise|provide)\b/.test(code) ||
  /\byield\*\s/.test(code)

describe("docs snippets", () => {
  it("the pages have TypeScript snippets to compile", () => {
    assert.isAbove(snippets.length, 0)
  })

  for (const page of [...new Set(snippets.map((block) => block.page))]) {
    it(`${page}: every inline ts block compiles as a module of its own`, () => {
      const errors = compile()
      const found = snippets.filter((block) => block.page === page).flatMap((block) => errors.get(fileOf(block)) ?? [])
      assert.deepStrictEqual(found, [], `snippets of ${page} that do not compile:\n${found.join("\n")}`)
      assert.deepStrictEqual(errors.get("") ?? [], [])
    }, 120_000)
  }

  it("no TypeScript is fenced as JavaScript, or without a language", () => {
    const mislabelled = all.filter((block) =>
      (block.tag === "" || block.tag === "js" || block.tag === "javascript") && looksLikeTypeScript(block.code)
    ).map((block) => `${block.page}:${block.line}: fence it as ts`)
    assert.deepStrictEqual(mislabelled, [])
  })
})

/**
 * The fenced code blocks of the docs (README.md and docs/**\/*.md), for the tests that check what the pages show:
 * test/docs.snippets.test.ts compiles the TypeScript ones, test/docs.messages.test.ts compares the quoted output.
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** The repository's root. */
export const root = path.join(import.meta.dirname, "..", "..")

/** A fenced code block of a page. */
export interface Block {
  /** The page, relative to the root. */
  readonly page: string
  /** The line of the opening fence (1-based). */
  readonly line: number
  /** The fence's language tag, lower case; `""` when there is none. */
  readonly tag: string
  /** The block's text, without its fences and without the indentation of a block inside a list item. */
  readonly code: string
  /** The marker comment on the line right above the opening fence (`<!-- example: examples/x.ts -->`), if any. */
  readonly marker: { readonly kind: string; readonly file: string } | undefined
}

const walk = (dir: string): Array<string> =>
  fs.readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? walk(path.join(dir, entry.name)) : [path.join(dir, entry.name)]
  )

/** README.md and every page under docs/, relative to the root. */
export const pages = (): Array<string> => ["README.md", ...walk("docs").filter((file) => file.endsWith(".md")).sort()]

/** Every fenced block of one page. */
export const blocks = (page: string): Array<Block> => {
  const lines = fs.readFileSync(path.join(root, page), "utf8").split("\n")
  const found: Array<Block> = []
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([^\s`]*)/.exec(lines[i]!)
    if (open === null) continue
    const [, indent, fence, tag] = open
    let end = i + 1
    while (end < lines.length && !lines[end]!.trimStart().startsWith(fence!)) end++
    const marker = i > 0 ? /^<!-- (\w+): (\S+) -->$/.exec(lines[i - 1]!.trim()) : null
    found.push({
      page,
      line: i + 1,
      tag: tag!.toLowerCase(),
      code: lines.slice(i + 1, end).map((line) => line.startsWith(indent!) ? line.slice(indent!.length) : line).join(
        "\n"
      ) + "\n",
      marker: marker === null ? undefined : { kind: marker[1]!, file: marker[2]! }
    })
    i = end
  }
  return found
}

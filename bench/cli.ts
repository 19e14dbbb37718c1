/**
 * The command line shared by `bench/run.ts` and `bench/pg.ts`: `--quick`, `--json`, `--docs`, `--rounds N`, and
 * any `--name value` option.
 */
const argv = process.argv.slice(2)

/** Whether a flag is on the command line. */
export const flag = (name: string): boolean => argv.includes(name)

/** The value after an option, if given. */
export const option = (name: string): string | undefined => {
  const i = argv.indexOf(name)
  return i >= 0 ? argv[i + 1] : undefined
}

export const quick = flag("--quick")
export const json = flag("--json")
export const writeDocs = flag("--docs")
export const rounds = Number(option("--rounds") ?? (quick ? 1 : 3))

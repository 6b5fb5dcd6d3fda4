/**
 * Derives the Effect 4 line from the Effect 3 line: every file under the trees in renames.ts is rewritten by the
 * renames, then its patch (port/patches/<v3 path>.patch, a unified diff) is applied. What the two lines share lives
 * once, in the Effect 3 sources; the patches hold only what differs, and a patch that no longer applies fails.
 *
 *   tsx port/port.ts           regenerate the Effect 4 files from the Effect 3 files and the patches
 *   tsx port/port.ts --check   fail if any Effect 4 file differs from what the Effect 3 file and its patch give (CI)
 *   tsx port/port.ts --save    record hand edits: rewrite each patch as the diff from the renamed Effect 3 file to
 *                              the Effect 4 file as it is now
 *   tsx port/port.ts --add     write only the Effect 4 files that do not exist yet (a new Effect 3 file or tree)
 *
 * Effect 4 files with no Effect 3 counterpart are the v4 line's own and are left alone (listed by --check).
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { renames, skipped, trees } from "./renames.ts"

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, "../..")
const patches = path.join(here, "patches")
const mode = process.argv[2] ?? "--write"

/** The files under `dir` (or `dir` itself, when it is a file). */
const walk = (dir: string): Array<string> =>
  !fs.existsSync(dir)
    ? []
    : fs.statSync(dir).isFile()
    ? [dir]
    : fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory() ? walk(path.join(dir, entry.name)) : [path.join(dir, entry.name)]
    )

const renamed = (text: string): string => renames.reduce((acc, rule) => acc.replace(rule.from, rule.to), text)

const patchFile = (v3: string): string => path.join(patches, `${v3}.patch`)

/** The renamed Effect 3 file with its patch applied, or an error naming the patch that no longer applies. */
const derive = (v3: string): string => {
  const base = renamed(fs.readFileSync(path.join(root, v3), "utf8"))
  const patch = patchFile(v3)
  if (!fs.existsSync(patch)) return base
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "port-"))
  try {
    const input = path.join(tmp, "in")
    const output = path.join(tmp, "out")
    fs.writeFileSync(input, base)
    try {
      execFileSync("patch", ["--quiet", "--force", "--no-backup-if-mismatch", "-r", "-", "-o", output, input, patch], {
        stdio: ["ignore", "pipe", "pipe"]
      })
    } catch (error) {
      const out = (error as { stdout?: Buffer }).stdout?.toString() ?? ""
      throw new Error(`${path.relative(root, patch)} no longer applies to ${v3}:\n${out}`)
    }
    return fs.readFileSync(output, "utf8")
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

/** The Effect 3 files that have an Effect 4 counterpart, with that counterpart's path. */
const pairs = (): Array<readonly [string, string]> =>
  trees.flatMap(([from, to]) =>
    walk(path.join(root, from))
      .map((file) => path.relative(root, file))
      .filter((v3) => !skipped.includes(v3))
      .map((v3) => [v3, path.join(to, path.relative(from, v3))] as const)
  )

const diff = (v3: string, base: string, current: string): string => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "port-"))
  try {
    const a = path.join(tmp, "a")
    fs.writeFileSync(a, base)
    try {
      execFileSync("diff", ["-u", "--label", `a/${v3}`, "--label", `b/${v3}`, a, current], { stdio: "pipe" })
      return ""
    } catch (error) {
      const status = (error as { status?: number }).status
      if (status !== 1) throw error
      return (error as { stdout: Buffer }).stdout.toString()
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
}

const main = (): number => {
  const all = pairs()
  let failures = 0
  for (const [v3, v4] of all) {
    const target = path.join(root, v4)
    if (mode === "--save") {
      if (!fs.existsSync(target)) {
        console.error(`missing ${v4}: add ${v3} to skipped in port/renames.ts, or run without --save first`)
        failures++
        continue
      }
      const text = diff(v3, renamed(fs.readFileSync(path.join(root, v3), "utf8")), target)
      const patch = patchFile(v3)
      if (text === "") fs.rmSync(patch, { force: true })
      else {
        fs.mkdirSync(path.dirname(patch), { recursive: true })
        fs.writeFileSync(patch, text)
      }
      continue
    }
    let derived: string
    try {
      derived = derive(v3)
    } catch (error) {
      console.error(String((error as Error).message))
      failures++
      continue
    }
    if (mode === "--add" && fs.existsSync(target)) continue
    if (mode === "--check") {
      const current = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : undefined
      if (current !== derived) {
        console.error(`${v4} differs from ${v3} + its patch: edit ${v3} or the patch, or run port/port.ts --save`)
        failures++
      }
    } else {
      fs.mkdirSync(path.dirname(target), { recursive: true })
      fs.writeFileSync(target, derived)
    }
  }
  const derivedTargets = new Set(all.map(([, v4]) => v4))
  const own = trees.flatMap(([, to]) => walk(path.join(root, to)).map((f) => path.relative(root, f)))
    .filter((f) => !derivedTargets.has(f))
  // Patches left for files that are gone from the Effect 3 line.
  const stale = walk(patches).map((p) => path.relative(patches, p).replace(/\.patch$/, ""))
    .filter((v3) => !all.some(([file]) => file === v3))
  for (const v3 of stale) {
    console.error(`port/patches/${v3}.patch has no Effect 3 file: remove it`)
    failures++
  }
  if (mode === "--check") {
    console.log(`${all.length} files derived from the Effect 3 line (${walk(patches).length} with a patch); ${own.length} Effect 4 files of its own${own.length ? ": " + own.join(", ") : ""}`)
  }
  return failures === 0 ? 0 : 1
}

process.exit(main())

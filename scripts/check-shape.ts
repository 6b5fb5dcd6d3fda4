/**
 * `npm run check`'s shape check of `src/`: no import cycle (type-only imports included), no file over 450 lines, no
 * function over 80 lines. Prints every violation and exits non-zero if there is one.
 */
import { readdirSync, readFileSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import ts from "typescript"

const root = resolve(import.meta.dirname, "..", "src")
const maxFileLines = 450
const maxFunctionLines = 80

const files = (dir: string): Array<string> =>
  readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? files(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
  )

const problems: Array<string> = []
const graph = new Map<string, Array<string>>()

for (const file of files(root)) {
  const text = readFileSync(file, "utf8")
  const name = relative(root, file)
  const lines = text.split("\n").length
  if (lines > maxFileLines) problems.push(`${name}: ${lines} lines (at most ${maxFileLines})`)
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  const imports: Array<string> = []
  const visit = (node: ts.Node): void => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier !== undefined) {
      const specifier = (node.moduleSpecifier as ts.StringLiteral).text
      if (specifier.startsWith(".")) imports.push(relative(root, resolve(dirname(file), specifier.replace(/\.js$/, ".ts"))))
    }
    if (ts.isFunctionLike(node) && "body" in node && node.body !== undefined) {
      const start = source.getLineAndCharacterOfPosition(node.getStart()).line
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line
      if (end - start + 1 > maxFunctionLines) {
        problems.push(`${name}:${start + 1}: a function of ${end - start + 1} lines (at most ${maxFunctionLines})`)
      }
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  graph.set(name, imports)
}

// Cycles, by depth-first search over the import graph.
const state = new Map<string, "open" | "done">()
const cycle = (node: string, path: Array<string>): void => {
  if (state.get(node) === "done") return
  if (state.get(node) === "open") {
    problems.push(`import cycle: ${[...path.slice(path.indexOf(node)), node].join(" → ")}`)
    return
  }
  state.set(node, "open")
  for (const next of graph.get(node) ?? []) cycle(next, [...path, node])
  state.set(node, "done")
}
for (const node of graph.keys()) cycle(node, [])

if (problems.length > 0) {
  console.error(`shape check of src/ failed:\n  ${problems.join("\n  ")}`)
  process.exit(1)
}
console.log(`shape check of src/: ${graph.size} files, no import cycle, files ≤ ${maxFileLines} lines, functions ≤ ${maxFunctionLines} lines`)

/**
 * docs/options.md against the option types: every option of every layer (read from the interfaces with the
 * TypeScript compiler, nested objects such as `cookie` included) appears in its section, and the section names no
 * option that does not exist. The reference cannot drift from the code.
 */
import { describe, expect, it } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { resolve } from "node:path"
import ts from "typescript"

const root = resolve(import.meta.dirname, "..")

/** The options an interface declares (own members only), `parent.child` for members of nested object literals. */
const optionsOf = (file: string, name: string): Array<string> => {
  const source = ts.createSourceFile(file, readFileSync(resolve(root, file), "utf8"), ts.ScriptTarget.Latest, true)
  const found = source.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === name)
  if (found === undefined) throw new Error(`${name} not found in ${file}`)
  const members = (list: ts.NodeArray<ts.TypeElement>, prefix: string): Array<string> =>
    list.flatMap((member) => {
      if (!ts.isPropertySignature(member) || member.type === undefined) return []
      const key = `${prefix}${member.name.getText(source)}`
      // A property whose type is an object (or it | undefined) lists its members instead of itself.
      const parts: ReadonlyArray<ts.TypeNode> = ts.isUnionTypeNode(member.type) ? member.type.types : [member.type]
      const objects = parts.filter((part): part is ts.TypeLiteralNode => ts.isTypeLiteralNode(part))
      const others = parts.filter((part) => !ts.isTypeLiteralNode(part) && part.kind !== ts.SyntaxKind.UndefinedKeyword)
      return objects.length === 1 && others.length === 0 ? members(objects[0]!.members, `${key}.`) : [key]
    })
  return members(found.members, "")
}

// One reference for both lines: the options are the same; this checks the Effect 4 line's types against it.
const reference = readFileSync(resolve(root, "../docs/options.md"), "utf8")

/** The options a section of the reference documents: the first cell of each table row. */
const documented = (heading: string): Array<string> => {
  const start = reference.indexOf(`## ${heading}`)
  if (start === -1) throw new Error(`docs/options.md has no section "${heading}"`)
  const end = reference.indexOf("\n## ", start + 1)
  const section = reference.slice(start, end === -1 ? undefined : end)
  return [...section.matchAll(/^\| `([\w.]+)` \|/gm)].map((match) => match[1]!)
}

const sections: ReadonlyArray<readonly [heading: string, file: string, name: string]> = [
  ["Store options", "src/internal/storeModel.ts", "Options"],
  ["PostgreSQL store", "src/PgSessionStore.ts", "Options"],
  ["The library's own pool", "src/internal/pgPool.ts", "PoolOptions"],
  ["Redis store", "src/RedisSessionStore.ts", "Options"],
  ["SQLite store", "src/SqliteSessionStore.ts", "Options"],
  ["Embedded engine", "src/EmbeddedPostgres.ts", "Options"],
  ["HTTP sessions", "src/internal/middlewareModel.ts", "Options"],
  ["Sealed-cookie sessions", "src/internal/middlewareModel.ts", "SealedOptions"],
  ["Cross-origin guard", "src/CsrfProtection.ts", "Options"]
]

describe("docs/options.md", () => {
  for (const [heading, file, name] of sections) {
    it(`documents exactly the options of ${name} in ${file}`, () => {
      expect([...documented(heading)].sort()).toEqual([...optionsOf(file, name)].sort())
    })
  }
})

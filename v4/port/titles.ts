/**
 * The two lines run the same tests: compares the test titles of the Effect 3 line's runs with the Effect 4 line's,
 * from vitest's JSON reports (`--reporter=json --outputFile.json=…`), and fails listing every test that one line has
 * and the other has not, or that did not pass.
 *
 *   tsx port/titles.ts <dir with v3-*.json> <dir with v4-*.json>
 *
 * A test is named by its file (relative to its line's root) and its full title, so a title repeated in two files
 * counts twice and a test moved to another file shows up as a difference. Tests in a file the Effect 3 line does not
 * have (the tests of the Effect 4 line's own modules, such as pgPoolClient) are listed, not counted as differences.
 */
import * as fs from "node:fs"
import * as path from "node:path"

interface Report {
  readonly testResults: ReadonlyArray<{
    readonly name: string
    readonly assertionResults: ReadonlyArray<{ readonly fullName: string; readonly status: string }>
  }>
}

const [v3Dir, v4Dir] = process.argv.slice(2)
if (v3Dir === undefined || v4Dir === undefined) {
  console.error("usage: tsx port/titles.ts <v3 reports dir> <v4 reports dir>")
  process.exit(2)
}

/** `file › full title` → status, for every report `<prefix>-*.json` in `dir`. */
const tests = (dir: string, prefix: string): Map<string, string> => {
  const found = new Map<string, string>()
  const files = fs.readdirSync(dir).filter((f) => f.startsWith(`${prefix}-`) && f.endsWith(".json")).sort()
  if (files.length === 0) throw new Error(`no ${prefix}-*.json report in ${dir}`)
  for (const file of files) {
    const report = JSON.parse(fs.readFileSync(path.join(dir, file), "utf8")) as Report
    for (const result of report.testResults) {
      // Both lines keep their tests under test/: name each by its path from there.
      const relative = result.name.slice(result.name.lastIndexOf(`${path.sep}test${path.sep}`) + 1)
      for (const test of result.assertionResults) {
        const key = `${relative} › ${test.fullName}`
        found.set(key, found.has(key) ? `${found.get(key)}+${test.status}` : test.status)
      }
    }
  }
  return found
}

const v3 = tests(v3Dir, "v3")
const v4 = tests(v4Dir, "v4")
/** Test files of the Effect 4 line with no Effect 3 counterpart: they test the line's own modules (listed, allowed). */
const ownFile = (key: string) =>
  !fs.existsSync(path.join(import.meta.dirname, "../..", key.slice(0, key.indexOf(" › "))))
/** How many tests carry a title (a suite run on several backends in one file repeats its titles). */
const times = (status: string | undefined) => status === undefined ? 0 : status.split("+").length
// A title both lines have, but not as many times: the line with fewer lacks tests.
const fewer = [...v3.keys()].filter((k) => v4.has(k) && times(v3.get(k)) !== times(v4.get(k)))
for (const key of fewer) console.error(`not as many times: ${times(v3.get(key))} in the Effect 3 line, ${times(v4.get(key))} in the Effect 4 line: ${key}`)
const onlyV3 = [...v3.keys()].filter((k) => !v4.has(k))
const ownV4 = [...v4.keys()].filter((k) => !v3.has(k) && ownFile(k))
const onlyV4 = [...v4.keys()].filter((k) => !v3.has(k) && !ownFile(k))
for (const key of ownV4) console.log(`the Effect 4 line's own (its own module's test): ${key}`)
const notPassed = [...v3, ...v4].filter(([, status]) => status.split("+").some((s) => s !== "passed"))
for (const key of onlyV3) console.error(`only in the Effect 3 line: ${key}`)
for (const key of onlyV4) console.error(`only in the Effect 4 line: ${key}`)
for (const [key, status] of notPassed) console.error(`not passed (${status}): ${key}`)
const count = (tests: Map<string, string>) => [...tests.values()].reduce((n, status) => n + times(status), 0)
const differ = onlyV3.length + onlyV4.length + fewer.length
console.log(`${count(v3)} tests (${v3.size} titles) in the Effect 3 line's reports, ${count(v4)} (${v4.size}) in the Effect 4 line's; ${differ} differ, ${notPassed.length} not passed`)
process.exit(differ + notPassed.length === 0 ? 0 : 1)

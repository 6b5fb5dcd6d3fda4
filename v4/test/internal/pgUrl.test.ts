import { describe, expect, it } from "@effect/vitest"
import { Redacted, Result } from "effect"
import Pg from "pg"
import * as PgUrl from "../../src/internal/pgUrl.js"

const parsed = (url: string) => Result.getOrThrow(PgUrl.parse(url))
const refusal = (url: string) => Result.flip(PgUrl.parse(url)).pipe(Result.getOrThrow)

/** What pg itself makes of a URL: the parameters it connects with. */
const pgReads = (url: Redacted.Redacted<string>) => {
  const { connectionParameters: p } = new Pg.Client({ connectionString: Redacted.value(url) }) as unknown as {
    connectionParameters: Record<string, unknown>
  }
  return { host: p.host, port: p.port, user: p.user, password: p.password, database: p.database, ssl: p.ssl, application_name: p.application_name, options: p.options }
}

describe("PgUrl.parse", () => {
  it("a host list: each host in its own URL that pg parses as usual, the rest passed through", () => {
    const url = parsed(
      "postgres://us%40er:p%2Fss%3Aw@db1.example:5441,[::1]:5442,db3/my%20db?sslmode=disable&target_session_attrs=primary&application_name=a%20b&options=-c%20x%3Dy&load_balance_hosts=random"
    )
    expect(url.hosts).toEqual([{ host: "db1.example", port: 5441 }, { host: "::1", port: 5442 }, { host: "db3", port: undefined }])
    expect(url.targetSessionAttrs).toBe("primary")
    expect(url.loadBalanceHosts).toBe("random")
    const common = { user: "us@er", password: "p/ss:w", database: "my db", ssl: false, application_name: "a b", options: "-c x=y" }
    expect(pgReads(url.withHost!(url.hosts![0]!))).toEqual({ ...common, host: "db1.example", port: 5441 })
    expect(pgReads(url.withHost!(url.hosts![1]!))).toEqual({ ...common, host: "::1", port: 5442 })
    expect(pgReads(url.withHost!(url.hosts![2]!))).toEqual({ ...common, host: "db3", port: 5432 })
    expect(Redacted.value(url.withHost!(url.hosts![0]!))).not.toMatch(/target_session_attrs|load_balance_hosts/)
  })

  it("one host: the URL is pg's exactly as given, less the two parameters pg does not know", () => {
    const plain = "postgres://u:secret@127.0.0.1:5432/test?sslmode=disable"
    expect(Redacted.value(parsed(plain).url)).toBe(plain)
    expect(parsed(plain).hosts).toBeUndefined()
    const withAttrs = parsed("postgresql://u@h/db?target_session_attrs=read-write&sslmode=disable")
    expect(withAttrs.targetSessionAttrs).toBe("read-write")
    expect(Redacted.value(withAttrs.url)).toBe("postgresql://u@h/db?sslmode=disable")
    expect(Redacted.value(parsed("postgres://u@/db?host=/var/run/postgresql").url)).toBe("postgres://u@/db?host=/var/run/postgresql")
  })

  it("a URL that is not postgres:// (a socket path) is left to pg whole, with no host to replace", () => {
    const url = parsed("socket:/var/run/postgresql?db=test")
    expect(Redacted.value(url.url)).toBe("socket:/var/run/postgresql?db=test")
    expect(url.withHost).toBeUndefined()
  })

  it("a host may be replaced in a single-host URL, IPv6 in brackets and socket directories encoded", () => {
    const url = parsed("postgres://u:pw@old:1/db?sslmode=disable")
    expect(pgReads(url.withHost!({ host: "fe80::2", port: 6000 }))).toMatchObject({ host: "fe80::2", port: 6000, password: "pw" })
    expect(pgReads(url.withHost!({ host: "/run/pg" }))).toMatchObject({ host: "/run/pg", port: 5432 })
  })

  it("the password stays redacted", () => {
    const url = parsed("postgres://u:hunter2@a:1,b:2/db")
    expect(String(url.withHost!(url.hosts![0]!))).not.toContain("hunter2")
    expect(JSON.stringify(url)).not.toContain("hunter2")
  })

  describe("refusals name the problem, never the URL", () => {
    for (
      const [url, reason] of [
        ["postgres://u:hunter2@a:1,b:99999/db", /port .* out of range/],
        ["postgres://u:hunter2@a:1,b:x/db", /port .* not a number/],
        ["postgres://u:hunter2@a:1,,b/db", /empty/],
        ["postgres://u:hunter2@a:1,b/db?target_session_attrs=readwrite", /target_session_attrs must be one of any, read-write, read-only, primary, standby, prefer-standby/],
        ["postgres://u:hunter2@a/db?load_balance_hosts=yes", /load_balance_hosts must be one of disable, random/],
        ["postgres://u:hunter2@a/db?target_session_attrs=any&target_session_attrs=primary", /given twice/],
        ["postgres://u:hunter2@a:1,b%zz/db", /percent-encoding/]
      ] as const
    ) {
      it(url.replace("hunter2", "…"), () => {
        const reason_ = refusal(url)
        expect(reason_).toMatch(reason)
        expect(reason_).not.toContain("hunter2")
      })
    }
  })
})

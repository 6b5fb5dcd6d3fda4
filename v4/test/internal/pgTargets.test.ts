import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, Redacted } from "effect"
import { PgSessionStore } from "../../src/index.js"
import * as PgTargets from "../../src/internal/pgTargets.js"

const make = (options: PgTargets.TargetOptions) => PgTargets.make(options, 1_000)
const url = (text: string) => ({ url: Redacted.make(text) })

describe("PgTargets.make", () => {
  it.effect("several hosts default to read-write (a session store writes); one host to any (no check)", () =>
    Effect.gen(function*() {
      expect((yield* make(url("postgres://u@a:1,b:2/db"))).attrs).toBe("read-write")
      expect((yield* make({ hosts: [{ host: "a" }, { host: "b", port: 2 }] })).attrs).toBe("read-write")
      expect((yield* make(url("postgres://u@a:1/db"))).attrs).toBe("any")
      expect((yield* make({ host: "a" })).attrs).toBe("any")
      expect((yield* make(url("postgres://u@a:1,b:2/db?target_session_attrs=any"))).attrs).toBe("any")
      expect((yield* make({ ...url("postgres://u@a/db"), targetSessionAttrs: "primary" })).attrs).toBe("primary")
    }))

  it.effect("each candidate is the URL with one host, or the listed host, in order", () =>
    Effect.gen(function*() {
      const fromUrl = yield* make(url("postgres://u:pw@a:1,[::1]:2/db?sslmode=disable"))
      expect(fromUrl.candidates.map((c) => c.name)).toEqual(["a:1", "[::1]:2"])
      expect(fromUrl.candidates.map((c) => c.config.connectionString)).toEqual([
        "postgres://u:pw@a:1/db?sslmode=disable",
        "postgres://u:pw@[::1]:2/db?sslmode=disable"
      ])
      const intoUrl = yield* make({ ...url("postgres://u:pw@old/db"), hosts: [{ host: "x", port: 3 }, { host: "y" }] })
      expect(intoUrl.candidates.map((c) => c.config.connectionString)).toEqual(["postgres://u:pw@x:3/db", "postgres://u:pw@y/db"])
      const plain = yield* make({ hosts: [{ host: "x", port: 3 }, { host: "y" }] })
      expect(plain.candidates.map((c) => c.config)).toEqual([{ host: "x", port: 3 }, { host: "y", port: undefined }])
    }))

  it.effect("layerPool refuses a bad host list at build, before any connection", () =>
    Effect.gen(function*() {
      const layer = PgSessionStore.layerPool({
        url: Redacted.make("postgres://u:secret@127.0.0.1:1,127.0.0.1:2/db?target_session_attrs=master")
      })
      const error = yield* Effect.flip(Effect.scoped(Layer.build(layer)))
      expect(error).toMatchObject({ _tag: "InvalidConfig", option: "url" })
      expect(error.message).toMatch(/target_session_attrs must be one of/)
      expect(error.message).not.toContain("secret")
    }))

  describe("invalid configurations are InvalidConfig at build, with the reason", () => {
    const cases: ReadonlyArray<readonly [string, PgTargets.TargetOptions, string, RegExp]> = [
      ["a bad port in the URL", url("postgres://u:secret@a:1,b:0/db"), "url", /out of range/],
      ["an unknown target_session_attrs in the URL", url("postgres://u:secret@a,b/db?target_session_attrs=master"), "url", /must be one of/],
      ["an unknown targetSessionAttrs option", { host: "a", targetSessionAttrs: "master" as never }, "targetSessionAttrs", /must be one of/],
      ["an unknown loadBalanceHosts option", { host: "a", loadBalanceHosts: "round-robin" as never }, "loadBalanceHosts", /must be one of/],
      ["the option and the URL disagree", { ...url("postgres://u@a,b/db?target_session_attrs=primary"), targetSessionAttrs: "standby" }, "targetSessionAttrs", /differs/],
      ["host and hosts", { host: "a", hosts: [{ host: "b" }] }, "hosts", /not both/],
      ["hosts and a URL that lists hosts", { ...url("postgres://u@a,b/db"), hosts: [{ host: "c" }] }, "hosts", /one place/],
      ["hosts and a socket URL", { ...url("socket:/run/pg?db=x"), hosts: [{ host: "c" }] }, "hosts", /postgres:\/\//],
      ["no hosts", { hosts: [] }, "hosts", /at least one/],
      ["an empty host", { hosts: [{ host: "" }] }, "hosts", /empty/],
      ["a port that is no port", { hosts: [{ host: "a", port: 70000 }] }, "hosts", /not a port/]
    ]
    for (const [name, options, option, reason] of cases) {
      it.effect(name, () =>
        Effect.gen(function*() {
          const error = yield* Effect.flip(make(options))
          expect(error).toMatchObject({ _tag: "InvalidConfig", option })
          expect(error.reason).toMatch(reason)
          expect(error.message).not.toContain("secret")
        }))
    }
  })
})

describe("Targets: which host a new connection tries", () => {
  const three = (attrs: "read-write" | "prefer-standby" = "read-write", random = false) =>
    new PgTargets.Targets(["a", "b", "c"].map((name) => ({ name, config: {} })), attrs, random, 1_000)

  it("the first host that has not failed lately, in order; every host once per connection", () => {
    const targets = three()
    expect(targets.attempts).toBe(3)
    expect(targets.next()).toBe(0)
    targets.reject(0)
    expect(targets.next()).toBe(1)
    targets.accept(1)
    expect(targets.next()).toBe(1) // a stays behind for the recheck period
    targets.accept(0)
    expect(targets.next()).toBe(0)
  })

  it("when every host failed lately, the one that failed longest ago, and round they go", () => {
    const targets = three()
    targets.reject(1)
    targets.reject(0)
    targets.reject(2)
    const order = [targets.next(), targets.next(), targets.next()]
    expect(new Set(order).size).toBe(3)
  })

  it("a host is checked again once the recheck period has passed, by one connection while the others skip it", () => {
    const targets = three()
    const now = Date.now()
    const clock = { now }
    const realNow = Date.now
    Date.now = () => clock.now
    try {
      targets.reject(0)
      expect(targets.next()).toBe(1)
      clock.now = now + PgTargets.recheckMillis
      expect(targets.next()).toBe(0) // the re-check
      expect(targets.next()).toBe(1) // meanwhile the others go on
    } finally {
      Date.now = realNow
    }
  })

  it("load_balance_hosts=random starts at every host", () => {
    const targets = three("read-write", true)
    const seen = new Set(Array.from({ length: 200 }, () => targets.next()))
    expect(seen).toEqual(new Set([0, 1, 2]))
  })

  it("fits as libpq's target_session_attrs; prefer-standby takes a primary only when every other host failed", () => {
    const primary = { standby: false, readOnly: false }
    const standby = { standby: true, readOnly: true }
    const readOnlyPrimary = { standby: false, readOnly: true }
    const fit = (attrs: PgTargets.Targets["attrs"], found: typeof primary) =>
      new PgTargets.Targets([{ name: "a", config: {} }, { name: "b", config: {} }], attrs, false, 1).fits(0, found)
    expect([primary, standby, readOnlyPrimary].map((f) => fit("any", f))).toEqual([true, true, true])
    expect([primary, standby, readOnlyPrimary].map((f) => fit("read-write", f))).toEqual([true, false, false])
    expect([primary, standby, readOnlyPrimary].map((f) => fit("read-only", f))).toEqual([false, true, true])
    expect([primary, standby, readOnlyPrimary].map((f) => fit("primary", f))).toEqual([true, false, true])
    expect([primary, standby, readOnlyPrimary].map((f) => fit("standby", f))).toEqual([false, true, false])
    const prefer = three("prefer-standby")
    expect(prefer.attempts).toBe(4)
    expect(prefer.fits(0, standby)).toBe(true)
    expect(prefer.fits(0, primary)).toBe(false)
    prefer.reject(1)
    prefer.reject(2)
    expect(prefer.fits(0, primary)).toBe(true)
  })
})

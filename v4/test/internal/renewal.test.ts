import { describe, expect, it } from "@effect/vitest"
import * as Renewal from "../../src/internal/renewal.js"

const policy: Renewal.Policy = {
  normal: { idle: 600_000, absolute: 3_600_000 },
  remembered: { idle: 86_400_000, absolute: 864_000_000 },
  threshold: 0.5
}

describe("Renewal", () => {
  it("a session expires idle past now, never beyond its absolute lifetime", () => {
    const lifetime = Renewal.lifetime(policy, false)
    expect(Renewal.expiresAt(lifetime, 0, 1_000)).toBe(601_000)
    expect(Renewal.expiresAt(lifetime, 0, 3_300_000)).toBe(3_600_000)
  })

  it("remembered sessions get the longer timeouts", () => {
    expect(Renewal.lifetime(policy, true)).toBe(policy.remembered)
  })

  it("outlived: exactly at the absolute limit is still valid", () => {
    const lifetime = Renewal.lifetime(policy, false)
    expect(Renewal.outlived(lifetime, 0, 3_600_000)).toBe(false)
    expect(Renewal.outlived(lifetime, 0, 3_600_001)).toBe(true)
  })

  it("renewal is due only once the expiry would move by more than the threshold", () => {
    const lifetime = Renewal.lifetime(policy, false)
    expect(Renewal.isDue(policy, lifetime, 600_000, 900_000)).toBe(false) // 5 of 10 minutes: not more than half
    expect(Renewal.isDue(policy, lifetime, 600_000, 900_001)).toBe(true)
    expect(Renewal.isDue({ ...policy, threshold: 0 }, lifetime, 600_000, 600_001)).toBe(true)
  })
})

/**
 * The errors' identities: `_tag`s as the store's contract promises (`NotFound | Expired`, ...), schema identifiers
 * namespaced, so an HttpApi that declares `HttpApiError.NotFound` beside a session error never confuses the two.
 */
import { describe, expect, it } from "@effect/vitest"
import { SchemaAST } from "effect"
import { CsrfProtection, SessionError, SessionMiddleware } from "../src/index.js"

describe("error identities", () => {
  it("keep their tags and carry namespaced schema identifiers", () => {
    const errors = [
      [SessionError.NotFound, "NotFound"],
      [SessionError.Expired, "Expired"],
      [SessionError.Rotated, "Rotated"],
      [SessionError.InvalidValue, "InvalidValue"],
      [SessionError.InvalidSubject, "InvalidSubject"],
      [SessionError.InvalidExpiry, "InvalidExpiry"],
      [SessionError.InvalidConfig, "InvalidConfig"],
      [SessionError.SessionStoreError, "SessionStoreError"],
      [SessionMiddleware.SessionUnavailable, "SessionUnavailable"],
      [SessionMiddleware.SessionConflict, "SessionConflict"],
      [CsrfProtection.CrossOriginForbidden, "CrossOriginForbidden"],
      [CsrfProtection.CsrfTokenInvalid, "CsrfTokenInvalid"]
    ] as const
    for (const [error, tag] of errors) {
      expect(error.fields._tag.ast.literal).toBe(tag)
      expect(SchemaAST.resolveIdentifier(error.ast)).toEqual(`effect-session/${tag}`)
    }
    expect(SchemaAST.resolveAt<number>("httpApiStatus")(SessionMiddleware.SessionConflict.ast)).toBe(409)
  })
})

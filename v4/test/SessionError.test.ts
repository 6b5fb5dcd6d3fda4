/**
 * The errors' identities: `_tag`s as the store's contract promises (`NotFound | Expired`, ...), schema identifiers
 * namespaced, so an HttpApi that declares `HttpApiError.NotFound` beside a session error never confuses the two.
 */
import { HttpApiSchema } from "effect/http"
import { describe, expect, it } from "@effect/vitest"
import { Option, SchemaAST } from "effect"
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
      expect(error._tag).toBe(tag)
      expect(SchemaAST.getIdentifierAnnotation(SchemaAST.typeAST(error.ast))).toEqual(Option.some(`effect-session/${tag}`))
    }
    expect(HttpApiSchema.getStatus(SessionMiddleware.SessionConflict.ast, 0)).toBe(409)
  })
})

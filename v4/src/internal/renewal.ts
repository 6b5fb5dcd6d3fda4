/**
 * When a middleware session expires, and when a request should push its expiry out.
 *
 * A session lives `idle` past its last renewal, never beyond `absolute` from its creation. A request renews only
 * once the expiry it would set has moved more than `threshold × idle` past the stored one, so that reading does not
 * write on every request and most writes leave the indexed expiry column alone.
 */

/** The two timeouts, in milliseconds. */
export interface Lifetime {
  readonly idle: number
  readonly absolute: number
}

/** The renewal policy of a middleware. */
export interface Policy {
  readonly normal: Lifetime
  readonly remembered: Lifetime
  /** Fraction of `idle` (0 to 1). */
  readonly threshold: number
}

/** The timeouts of a remembered or ordinary session. */
export const lifetime = (policy: Policy, remember: boolean): Lifetime => remember ? policy.remembered : policy.normal

/** The expiry a session created at `created` gets when renewed at `now`. */
export const expiresAt = (lifetime: Lifetime, created: number, now: number): number =>
  Math.min(now + lifetime.idle, created + lifetime.absolute)

/** Whether the absolute lifetime has run out at `now` (exactly at the limit is still valid). */
export const outlived = (lifetime: Lifetime, created: number, now: number): boolean => now > created + lifetime.absolute

/** Whether moving the expiry from `stored` to `target` is worth a write. */
export const isDue = (policy: Policy, lifetime: Lifetime, stored: number, target: number): boolean =>
  target - stored > lifetime.idle * policy.threshold

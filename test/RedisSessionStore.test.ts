import { Layer } from "effect"
import { conformance } from "./support/conformance.js"
import { shared, storeLayer } from "./support/redis.js"

conformance("RedisSessionStore on standalone Redis", Layer.empty, storeLayer(shared))

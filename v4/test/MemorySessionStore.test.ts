import { Layer } from "effect"
import { MemorySessionStore } from "../src/index.js"
import { conformance } from "./support/conformance.js"

conformance("MemorySessionStore", Layer.empty, (options) => MemorySessionStore.layer(options))

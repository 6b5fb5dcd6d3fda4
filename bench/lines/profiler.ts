/**
 * A CPU profile of this process over a window (V8's sampling profiler, the one `node --cpu-prof` starts, driven
 * through `node:inspector` so that the profile covers the load only, not the start-up and the sessions' creation).
 * Node modules only: the Effect 4 line's workers import it too.
 */
import { Session } from "node:inspector/promises"
import { writeFileSync } from "node:fs"

/** Starts profiling; the returned function stops and writes the `.cpuprofile` (Chrome DevTools, speedscope) to `file`. */
export const startProfile = async (intervalUs = 500) => {
  const session = new Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.setSamplingInterval", { interval: intervalUs })
  await session.post("Profiler.start")
  return async (file: string) => {
    const { profile } = await session.post("Profiler.stop")
    writeFileSync(file, JSON.stringify(profile))
    session.disconnect()
  }
}

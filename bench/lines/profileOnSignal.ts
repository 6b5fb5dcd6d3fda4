/**
 * Preloaded into a benchmark server (`node --import tsx --import bench/lines/profileOnSignal.ts …`): the first
 * SIGUSR2 starts a CPU profile, the second writes it to LINES_PROFILE_FILE and prints "profile written".
 */
import { startProfile } from "./profiler.js"

let stop: ((file: string) => Promise<void>) | undefined
let busy = false
process.on("SIGUSR2", () => {
  if (busy) return
  busy = true
  const step = stop === undefined
    ? startProfile().then((s) => { stop = s; console.log("profile started") })
    : stop(process.env.LINES_PROFILE_FILE ?? `lines-${process.pid}.cpuprofile`).then(() => {
      stop = undefined
      console.log("profile written")
    })
  step.finally(() => { busy = false })
})

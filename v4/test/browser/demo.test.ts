/**
 * The demo in a real browser: headless Chromium from Debian, driven by playwright-core.
 * Starts `npm start` as a user would (PORT=0, the embedded engine unless DATABASE_URL is set).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { chromium, type Browser } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"

let server: ChildProcess
let browser: Browser
let baseUrl: string

const startDemo = () =>
  new Promise<string>((resolve, reject) => {
    server = spawn(process.execPath, ["--import", "tsx", "examples/demo/main.ts"], {
      env: { ...process.env, PORT: "0" },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let output = ""
    const timer = setTimeout(() => reject(new Error(`demo did not start:\n${output}`)), 60_000)
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      const match = /listening on (http:\/\/\S+)/.exec(output)
      if (match) {
        clearTimeout(timer)
        resolve(match[1]!)
      }
    }
    server.stdout!.on("data", onData)
    server.stderr!.on("data", onData)
    server.once("exit", (code) => reject(new Error(`demo exited with ${code}:\n${output}`)))
  })

beforeAll(async () => {
  baseUrl = await startDemo()
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ]
  })
})

afterAll(async () => {
  await browser?.close()
  server?.kill("SIGTERM")
})

describe("the demo in Chromium", () => {
  it("log in, count across reloads, an HttpOnly cookie, log out", async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(baseUrl)
    expect(await page.textContent("#visits")).toBe("0") // no session for looking
    expect(await context.cookies()).toEqual([])

    await page.fill("input[name=name]", "Ada <script>")
    await page.click("button[type=submit]")
    await page.waitForSelector("#user")
    expect(await page.textContent("#user")).toBe("Ada <script>")
    expect(await page.textContent("#flash")).toBe("Welcome, Ada <script>!")

    const counts: Array<string | null> = []
    for (let i = 0; i < 3; i++) {
      await page.reload()
      counts.push(await page.textContent("#visits"))
    }
    expect(counts).toEqual(["2", "3", "4"])
    expect(await page.locator("#flash").count()).toBe(0) // flash shown once only

    const cookies = await context.cookies()
    const session = cookies.find((c) => c.name === "__Host-session")!
    expect(session).toMatchObject({ httpOnly: true, secure: true, sameSite: "Lax", path: "/", expires: -1 })
    expect(await page.evaluate<string>("document.cookie")).not.toContain("session")
    expect(await page.evaluate<string>("document.cookie")).toBe("")

    await page.click("text=Log out and forget me")
    await page.waitForSelector("input[name=name]")
    expect(await page.textContent("#flash")).toBe("Logged out, and your session is forgotten.")
    expect(await page.textContent("#visits")).toBe("1")
    const after = (await context.cookies()).find((c) => c.name === "__Host-session")
    expect(after?.value).not.toBe(session.value)
    await context.close()
  })

  it("your sessions: two devices of one user, one revokes the other, then logs out everywhere else", async () => {
    const name = `Lin ${Date.now()}`
    const devices = await Promise.all(["Laptop/1.0", "Phone/1.0"].map(async (userAgent) => {
      const context = await browser.newContext({ userAgent })
      const page = await context.newPage()
      await page.goto(baseUrl)
      await page.fill("input[name=name]", name)
      await page.click("button[type=submit]")
      await page.waitForSelector("#user")
      return { context, page }
    }))
    const [laptop, phone] = devices as [typeof devices[0], typeof devices[0]]

    await laptop.page.click("#your-sessions")
    await laptop.page.waitForSelector("tr.session")
    expect(await laptop.page.locator("tr.session").count()).toBe(2)
    expect(await laptop.page.locator("tr.session", { hasText: "This device" }).count()).toBe(1)
    const phoneRow = laptop.page.locator("tr.session", { hasText: "Phone/1.0" })
    expect(await phoneRow.count()).toBe(1)
    await phoneRow.locator("button.revoke").click()
    await laptop.page.waitForSelector("#flash")
    expect(await laptop.page.textContent("#flash")).toBe("That session is logged out.")
    expect(await laptop.page.locator("tr.session").count()).toBe(1)

    await phone.page.reload()
    expect(await phone.page.locator("input[name=name]").count()).toBe(1) // logged out at once
    await phone.page.fill("input[name=name]", name)
    await phone.page.click("button[type=submit]")
    await phone.page.waitForSelector("#user")

    await laptop.page.reload()
    expect(await laptop.page.locator("tr.session").count()).toBe(2)
    await laptop.page.click("#logout-others")
    await laptop.page.waitForSelector("#flash")
    expect(await laptop.page.textContent("#flash")).toBe("Logged out 1 other session.")
    await phone.page.reload()
    expect(await phone.page.locator("input[name=name]").count()).toBe(1)
    await laptop.page.goto(baseUrl)
    expect(await laptop.page.textContent("#user")).toBe(name) // this device stays logged in
    await Promise.all(devices.map(({ context }) => context.close()))
  })

  it("remember me gives a persistent cookie; plain log out keeps the counter, clears the user", async () => {
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(baseUrl)
    await page.fill("input[name=name]", "Grace")
    await page.check("input[name=remember]")
    await page.click("button[type=submit]")
    await page.waitForSelector("#user")
    const remembered = (await context.cookies()).find((c) => c.name === "__Host-session")!
    expect(remembered.expires).toBeGreaterThan(Date.now() / 1000 + 13 * 24 * 3600)

    await page.click("text=Log out")
    await page.waitForSelector("input[name=name]")
    expect(await page.textContent("#flash")).toBe("Goodbye, Grace. You are logged out.")
    expect(await page.textContent("#visits")).toBe("2")
    const afterLogout = (await context.cookies()).find((c) => c.name === "__Host-session")!
    expect(afterLogout.value).not.toBe(remembered.value)
    expect(afterLogout.expires).toBe(-1)
    await context.close()
  })
})

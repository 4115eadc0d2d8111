// The workbench in Debian's chromium (playwright-core) against the real server and the tiny
// engine, as a person uses it, with API keys on (the page asks for one; every call, stream and
// copied command carries it): the form from the schema, errors found in the browser and focused,
// Run in view at small screens, a 12 MP phone photo run and reused, copy as code from a LAN
// (non-secure) address with the copied cURL run, a reload mid-run then cancel, queue positions
// that only count down, the viewer's before/after slider, a sweep over prompts, an edit chain
// with a branch, gallery star/filter/delete, and screenshots at 1440×900 and 390×844 in light
// and dark (test-results/screenshots/). No page error anywhere. Jobs use 4 steps on the CPU.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { HistoryItem } from "@kontext/client";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { CHROMIUM } from "./global-setup.js";
import { freePort, type Server, startServer } from "./server.js";

const API_KEY = "workbench-test-key";
const AUTH = { Authorization: `Bearer ${API_KEY}` };
/** A name for this machine that is not localhost: the page there is not a secure context. */
const LAN_HOST = "workbench.test";
const serverOptions = () => ({ dataDir, port, python: inject("python"), env: { KONTEXT_API_KEYS: API_KEY } });
const SHOTS = path.resolve(import.meta.dirname, "../../test-results/screenshots");
const dataDir = mkdtempSync(path.join(tmpdir(), "kontext-workbench-"));
const work = mkdtempSync(path.join(tmpdir(), "kontext-workbench-shell-"));
let port: number;
let server: Server;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

const shot = (name: string, p: Page = page) => p.screenshot({ path: path.join(SHOTS, `${name}.png`) });
const api = async <T>(url: string, init: RequestInit = {}): Promise<T> =>
  (await (
    await fetch(`${server.url}${url}`, { ...init, headers: { ...AUTH, ...init.headers } })
  ).json()) as T;
const history = async () => (await api<{ generations: HistoryItem[] }>("/api/history")).generations;
const sha256 = async (url: string) =>
  createHash("sha256")
    .update(Buffer.from(await (await fetch(url, { headers: AUTH })).arrayBuffer()))
    .digest("hex");

// page helpers, by accessible name: every control used here must have one
const prompt = () => page.locator("#f-prompt");
const steps = () => page.getByRole("spinbutton", { name: /^Inference steps/ });
const seed = () => page.getByRole("spinbutton", { name: /^Seed/ });
const runButton = () => page.getByRole("button", { name: /^Run/ });
const resultPanel = () => page.getByRole("region", { name: "Result" });
const gallery = () => page.getByRole("region", { name: "History" });
const viewer = () => page.getByRole("dialog", { name: /./ }).filter({ has: page.locator(".viewer-stage") });

/** Runs the form with Ctrl+Enter and waits for the new run's result; returns its generation id. */
async function runAndWait(timeout = 120_000): Promise<string> {
  const cards = resultPanel().locator("article");
  const before = await cards.evaluateAll((els) => els.map((e) => e.getAttribute("data-generation")));
  await prompt().press("Control+Enter");
  const fresh = before.map((id) => `:not([data-generation="${id}"])`).join("");
  const card = resultPanel().locator(`article.phase-succeeded${fresh}`);
  await card.first().waitFor({ timeout });
  return (await card.first().getAttribute("data-generation")) as string;
}

/** A 4000×3000 JPEG of about 5 MB (a phone photo's size), drawn by the browser. */
async function phonePhoto(p: Page): Promise<Buffer> {
  const b64 = await p.evaluate(async () => {
    const c = new OffscreenCanvas(4000, 3000);
    const g = c.getContext("2d") as OffscreenCanvasRenderingContext2D;
    const img = g.createImageData(4000, 3000);
    let s = 7;
    for (let i = 0; i < img.data.length; i += 4) {
      s = (s * 1103515245 + 12345) & 0x7fffffff;
      const n = (s >> 16) & 31;
      const x = (i / 4) % 4000;
      img.data[i] = (x / 16 + n) & 255;
      img.data[i + 1] = (i / 48000 + n) & 255;
      img.data[i + 2] = 128 + n;
      img.data[i + 3] = 255;
    }
    g.putImageData(img, 0, 0);
    const blob = await c.convertToBlob({ type: "image/jpeg", quality: 0.9 });
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let out = "";
    for (let i = 0; i < bytes.length; i += 0x8000)
      out += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(out);
  });
  return Buffer.from(b64, "base64");
}

/** A small gradient PNG drawn by the browser. */
async function gradient(p: Page, w = 320, h = 240): Promise<Buffer> {
  const bytes = await p.evaluate(
    async ([w, h]) => {
      const c = new OffscreenCanvas(w as number, h as number);
      const g = c.getContext("2d") as OffscreenCanvasRenderingContext2D;
      const grad = g.createLinearGradient(0, 0, w as number, h as number);
      grad.addColorStop(0, "#d33");
      grad.addColorStop(1, "#33d");
      g.fillStyle = grad;
      g.fillRect(0, 0, w as number, h as number);
      return [...new Uint8Array(await (await c.convertToBlob({ type: "image/png" })).arrayBuffer())];
    },
    [w, h],
  );
  return Buffer.from(bytes);
}

async function open(p: Page): Promise<void> {
  p.on("pageerror", (err) => pageErrors.push(`${p.url()}: ${err.message}`));
  await p.addInitScript((key) => localStorage.setItem("kontext.apiKey", key), API_KEY);
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  port = await freePort();
  server = await startServer(serverOptions());
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      `--host-resolver-rules=MAP ${LAN_HOST} 127.0.0.1`,
    ],
  });
  context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
  page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(err.message));
  await page.goto(server.url);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

describe("workbench in chromium (real server, tiny engine)", () => {
  let photoRun: string; // the 12 MP photo's run
  let first: string; // the gradient's run (seed 42)

  it("asks for the API key the server wants, then builds the form from the schema", async () => {
    const keyForm = page.getByRole("form", { name: "API key" });
    await expect.poll(() => keyForm.isVisible()).toBe(true);
    await keyForm.getByLabel(/wants an API key/).fill(API_KEY);
    await keyForm.getByRole("button", { name: "Use key" }).click();
    await expect.poll(() => keyForm.isVisible()).toBe(false);
    await expect
      .poll(() => page.getByRole("alert").filter({ hasText: "Demo model" }).isVisible(), { timeout: 30_000 })
      .toBe(true);
    await expect.poll(() => steps().inputValue()).toBe("28"); // the schema's default
    expect(
      await page
        .getByRole("combobox", { name: /^Aspect ratio/ })
        .locator("option")
        .count(),
    ).toBe(12);
    // Fields only API clients need are marked in the schema and left out of the form.
    for (const name of ["response_format", "stream", "webhook", "webhook_events_filter"])
      expect(await page.locator(`[data-field="${name}"], #f-${name}`).count(), name).toBe(0);
    const unlabelled = await page.locator("input, select, textarea, button").evaluateAll((els) =>
      els
        .filter((el) => {
          const e = el as HTMLInputElement;
          if (e.type === "hidden" || e.closest("dialog")) return false;
          const named =
            (e.labels?.length ?? 0) > 0 ||
            e.getAttribute("aria-label") ||
            e.getAttribute("aria-labelledby") ||
            (el.tagName === "BUTTON" && el.textContent?.trim());
          return !named;
        })
        .map((el) => el.outerHTML.slice(0, 120)),
    );
    expect(unlabelled).toEqual([]);
  });

  it("keeps Run and Cancel in view at 1280×720 and 1440×900", async () => {
    for (const [width, height] of [
      [1280, 720],
      [1440, 900],
    ] as const) {
      await page.setViewportSize({ width, height });
      for (const button of [runButton(), page.getByRole("button", { name: "Cancel", exact: true })]) {
        const box = await button.boundingBox();
        expect(box, `${width}×${height}`).not.toBeNull();
        if (!box) continue;
        expect(box.y, `${width}×${height}`).toBeGreaterThanOrEqual(0);
        expect(box.y + box.height, `${width}×${height}`).toBeLessThanOrEqual(height);
        expect(box.height).toBeGreaterThan(20);
      }
    }
    await shot("01-empty-1440x900-light");
  });

  it("checks the form in the browser: an invalid field in a collapsed section is opened, shown and focused", async () => {
    const sent: string[] = [];
    const onRequest = (r: { url(): string; method(): string }) => {
      if (r.method() === "POST") sent.push(r.url());
    };
    page.on("request", onRequest);
    await prompt().fill("   ");
    await runButton().click();
    const summary = page.locator("#run-errors");
    await expect
      .poll(() => summary.textContent())
      .toMatch(/Not run: 2 fields need a fix: Input image, Prompt/);
    await expect.poll(() => page.locator("#f-prompt-error").textContent()).toMatch(/non-space character/);
    expect(await page.locator("#f-input_image-error").textContent()).toMatch(/required/);

    // Output quality sits under "More options", closed.
    const more = page.locator("details.more-options");
    expect(await more.getAttribute("open")).toBeNull();
    await page.setInputFiles("#f-input_image-file", {
      name: "small.png",
      mimeType: "image/png",
      buffer: await gradient(page),
    });
    await prompt().fill("add a hat");
    await page.evaluate(() => {
      // set the closed field's value as a person would after opening it, then close it again
      const d = document.querySelector("details.more-options") as HTMLDetailsElement;
      d.open = true;
    });
    await page.getByRole("spinbutton", { name: /^Output quality/ }).fill("150");
    await page.locator("details.more-options > summary").click(); // closed again
    expect(await more.getAttribute("open")).toBeNull();
    await runButton().click();
    await expect.poll(() => more.getAttribute("open")).not.toBeNull();
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe("f-output_quality");
    expect(await page.locator("#f-output_quality-error").textContent()).toMatch(/from 0 to 100, got 150/);
    expect(await summary.textContent()).toMatch(/Output quality/);
    expect(sent.filter((u) => u.includes("/api/ai/queue"))).toEqual([]); // nothing was sent
    page.off("request", onRequest);
    await page.getByRole("spinbutton", { name: /^Output quality/ }).fill("80");
  });

  it("refuses AVIF or HEIC when picked, and a valid pick clears the error", async () => {
    const heic = Buffer.concat([Buffer.from([0, 0, 0, 24]), Buffer.from("ftypheic"), Buffer.alloc(16)]);
    await page.setInputFiles("#f-input_image-file", { name: "IMG_0001.HEIC", mimeType: "", buffer: heic });
    await expect
      .poll(() => page.locator("#f-input_image-error").textContent())
      .toMatch(/HEIC, which the server cannot read/);
    await page.setInputFiles("#f-input_image-file", {
      name: "small.png",
      mimeType: "image/png",
      buffer: await gradient(page),
    });
    await expect.poll(() => page.locator("#f-input_image-error").count()).toBe(0);
  });

  it("runs a 12 MP, 5 MB phone photo end to end without blanking the page", async () => {
    const photo = await phonePhoto(page);
    expect(photo.length).toBeGreaterThan(4_000_000);
    await page.setInputFiles("#f-input_image-file", {
      name: "IMG_2041.jpg",
      mimeType: "image/jpeg",
      buffer: photo,
    });
    await expect
      .poll(() => page.locator(".dropzone figcaption").textContent(), { timeout: 30_000 })
      .toMatch(/4000×3000/);
    await expect.poll(() => page.getByTestId("output-size").textContent()).toBe("1184 × 880");
    // The code dialog opens with the photo chosen (its code reads the file, no megabytes inlined).
    await page.getByRole("button", { name: "Copy as code" }).click();
    const dialog = page.getByRole("dialog", { name: "Copy as code" });
    const code = (await dialog.locator("pre").textContent()) as string;
    expect(code).toContain("IMG_2041.jpg");
    expect(code.length).toBeLessThan(5000);
    await dialog.getByRole("button", { name: "Close" }).click();
    await prompt().fill("make the sky purple");
    await steps().fill("4");
    photoRun = await runAndWait();
    expect(await page.locator("h1").textContent()).toBe("Kontext workbench"); // the page is still there
    const item = (await history()).find((g) => g.generation_id === photoRun) as HistoryItem;
    expect([item.input_width, item.input_height]).toEqual([4000, 3000]);
  });

  it("uploads an image and runs it: progress advances step by step, previews update, the result shows", async () => {
    await page.setInputFiles("#f-input_image-file", {
      name: "gradient.png",
      mimeType: "image/png",
      buffer: await gradient(page),
    });
    await expect
      .poll(() => page.getByRole("img", { name: "Input image: gradient.png" }).isVisible())
      .toBe(true);
    await prompt().fill("add a red hat");
    await steps().fill("4");
    await seed().fill("42");
    await page.evaluate(() => {
      const w = window as unknown as { seenSteps: Record<string, string[]>; seenPreviews: Set<string> };
      w.seenSteps = {};
      w.seenPreviews = new Set();
      new MutationObserver(() => {
        for (const p of document.querySelectorAll("section.run progress[data-step]")) {
          const id = p.closest("article")?.getAttribute("data-generation") as string;
          const s = p.getAttribute("data-step") as string;
          w.seenSteps[id] ??= [];
          const seen = w.seenSteps[id];
          if (seen.at(-1) !== s) seen.push(s);
        }
        for (const img of document.querySelectorAll<HTMLImageElement>("img.preview"))
          w.seenPreviews.add(img.src);
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    first = await runAndWait();
    const seen = await page.evaluate((id) => {
      const w = window as unknown as { seenSteps: Record<string, string[]>; seenPreviews: Set<string> };
      return { steps: w.seenSteps[id] ?? [], previews: w.seenPreviews.size };
    }, first);
    expect(seen.steps.map(Number)).toEqual([...seen.steps.map(Number)].sort((a, b) => a - b));
    expect(new Set(seen.steps).size).toBeGreaterThanOrEqual(3);
    expect(seen.previews).toBeGreaterThanOrEqual(2);
    const card = resultPanel().locator(`article[data-generation="${first}"]`);
    expect(await card.locator(".status").textContent()).toBe("Done");
    expect(await card.locator(".result-meta").textContent()).toContain("seed 42 · 1184×880");
    // The step just run shows in the chain strip, after the original image.
    await expect
      .poll(() => page.getByRole("navigation", { name: "Edit chain" }).getByRole("button").allTextContents())
      .toEqual(["Original image", "Step 1: add a red hat"]);
    await shot("02-result-1440x900-light");
  });

  it("copies as cURL from a LAN address (not a secure context); the copied command runs as shown", async () => {
    const lan = await context.newPage();
    await open(lan);
    await lan.setViewportSize({ width: 1440, height: 900 });
    await lan.goto(`http://${LAN_HOST}:${port}/`);
    expect(await lan.evaluate(() => window.isSecureContext)).toBe(false);
    expect(await lan.evaluate(() => typeof navigator.clipboard)).toBe("undefined");
    // The workspace (image, prompt, seed) came along: local storage and IndexedDB are per origin,
    // so here it is set again.
    await lan.setInputFiles("#f-input_image-file", {
      name: "gradient.png",
      mimeType: "image/png",
      buffer: await gradient(lan),
    });
    await lan.locator("#f-prompt").fill("add a red hat");
    await lan.getByRole("spinbutton", { name: /^Inference steps/ }).fill("4");
    await lan.getByRole("spinbutton", { name: /^Seed/ }).fill("42");
    await lan.getByRole("button", { name: "Copy as code" }).click();
    const dialog = lan.getByRole("dialog", { name: "Copy as code" });
    await dialog.getByRole("radio", { name: "cURL" }).check();
    await dialog.getByRole("radio", { name: "Sync", exact: true }).check();
    const shown = (await dialog.locator("pre").textContent()) as string;
    await dialog.getByRole("button", { name: "Copy", exact: true }).click();
    await expect.poll(() => dialog.getByRole("status").textContent()).toMatch(/^Copied cURL/);
    await shot("03-copy-as-code", lan);
    // Read the clipboard from a secure page of the same browser.
    const code = await page.evaluate(() => navigator.clipboard.readText());
    expect(code).toBe(shown); // what is shown is what is copied, in full
    await lan.close();

    expect(code).toContain(`http://${LAN_HOST}:${port}/api/ai/images/edit`);
    expect(code).toContain("Authorization: Bearer $KONTEXT_API_KEY");
    expect(code).not.toContain(API_KEY);
    expect(code).not.toMatch(/base64,[A-Za-z0-9+/]{40}/); // no inlined image
    // Run it as a person would: the image in the current directory, the LAN name resolved by
    // curl's own configuration (this machine has no DNS for it).
    writeFileSync(path.join(work, "gradient.png"), await gradient(page));
    writeFileSync(path.join(work, ".curlrc"), `resolve = ${LAN_HOST}:${port}:127.0.0.1\n`);
    const out = JSON.parse(
      execFileSync("bash", ["-c", code], {
        cwd: work,
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, KONTEXT_API_KEY: API_KEY, CURL_HOME: work },
      }),
    ) as {
      generation_id: string;
      images: Array<{ url: string }>;
      seed: number;
      width: number;
      height: number;
    };
    expect([out.seed, out.width, out.height]).toEqual([42, 1184, 880]);
    const ours = (await history()).find((g) => g.generation_id === first) as HistoryItem;
    const theirs = String(out.images[0]?.url).replace(`${LAN_HOST}:${port}`, `127.0.0.1:${port}`);
    expect(await sha256(theirs)).toBe(await sha256(ours.result_url as string));
  });

  it("reuses the phone photo from the history and runs it again", async () => {
    const tile = gallery().locator(`li[data-generation="${photoRun}"]`);
    await tile.waitFor();
    await tile.getByRole("button", { name: /^Open:/ }).click();
    await viewer().getByRole("button", { name: "Reuse parameters" }).click();
    await expect
      .poll(() => page.locator(".dropzone figcaption").textContent(), { timeout: 30_000 })
      .toMatch(/input of “make the sky purple” · 4000×3000/);
    expect(await prompt().inputValue()).toBe("make the sky purple");
    const again = await runAndWait();
    const item = (await history()).find((g) => g.generation_id === again) as HistoryItem;
    expect([item.input_width, item.input_height, item.status]).toEqual([4000, 3000, "succeeded"]);
  });

  it("shows before/after in the viewer with a slider dragged on the image, and zooms", async () => {
    await resultPanel()
      .getByRole("button", { name: /^Before and after/ })
      .click();
    const v = viewer();
    await v.waitFor();
    const slider = v.getByRole("slider");
    await expect.poll(() => slider.getAttribute("aria-valuenow")).toBe("50");
    expect(await v.getByRole("img", { name: /^Before: input/ }).count()).toBe(1);
    const box = (await v.getByTestId("before-after").locator("[data-rcs=root]").boundingBox()) as {
      x: number;
      y: number;
      width: number;
      height: number;
    };
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.2, box.y + box.height / 2, { steps: 5 });
    await page.mouse.up();
    await expect.poll(async () => Number(await slider.getAttribute("aria-valuenow"))).toBeLessThan(30);
    await shot("04-before-after-1440x900-light");
    await v.getByRole("button", { name: "Zoom", exact: true }).click();
    await v.getByRole("button", { name: "Zoom in" }).click();
    await expect
      .poll(() => v.locator(".zoom-content").evaluate((e) => getComputedStyle(e).transform))
      .not.toBe("matrix(1, 0, 0, 1, 0, 0)");
    await v.getByRole("button", { name: "Close" }).click();
  });

  it("compares results with captions that name what differs", async () => {
    const sweep = page.locator("details.sweep-controls");
    await sweep.locator("summary").click();
    await page.getByRole("combobox", { name: "Axis" }).selectOption("prompt");
    await page.getByRole("textbox", { name: /^Prompt variants/ }).fill("add a red hat\nadd a blue scarf");
    await page.getByRole("textbox", { name: "Seeds" }).fill("1, 2");
    await page.getByRole("button", { name: "Run sweep" }).click();
    const grid = page.getByRole("region", { name: /^Sweep/ });
    await expect
      .poll(() => grid.locator("article.phase-succeeded").count(), { timeout: 150_000, interval: 500 })
      .toBe(4);
    expect(await grid.locator("thead th").allTextContents()).toEqual(["seed 1", "seed 2"]);
    expect(await grid.locator("tbody th").allTextContents()).toEqual([
      "“add a red hat”",
      "“add a blue scarf”",
    ]);
    const cells = await grid
      .locator("article")
      .evaluateAll((els) => els.map((e) => e.getAttribute("data-generation")));
    const byId = new Map((await history()).map((g) => [g.generation_id, g]));
    expect(cells.map((id) => [byId.get(id as string)?.prompt, byId.get(id as string)?.seed])).toEqual([
      ["add a red hat", 1],
      ["add a red hat", 2],
      ["add a blue scarf", 1],
      ["add a blue scarf", 2],
    ]);
    await shot("05-sweep-1440x900-light");
    // Two cells of one row: they differ only in the seed, and the captions say so.
    const boxes = grid.getByRole("checkbox", { name: /^Compare: / });
    await boxes.nth(0).check();
    await boxes.nth(1).check();
    await page.getByRole("region", { name: "Compare" }).getByRole("button", { name: "Compare 2" }).click();
    const v = viewer();
    expect(await v.locator(".viewer-side figcaption").allTextContents()).toEqual(["seed 1", "seed 2"]);
    await v.getByRole("button", { name: "Close" }).click();
    await page.getByRole("button", { name: "Clear comparison" }).click();
    await grid.getByRole("button", { name: "Close sweep" }).click();
  });

  it("continues editing, shows the chain with a branch, and goes back to a step in one click", async () => {
    await resultPanel()
      .getByRole("button", { name: /^Continue editing/ })
      .click();
    const chain = page.getByRole("navigation", { name: "Edit chain" });
    await prompt().fill("make the hat blue");
    const step2 = await runAndWait();
    const byId = new Map((await history()).map((g) => [g.generation_id, g]));
    const step1 = byId.get(step2)?.parent_generation_id as string;
    expect(step1).toBeTruthy();
    await expect.poll(() => chain.locator(".chain-step").count()).toBe(3);
    await chain.getByRole("button", { name: /^Go back to Step 1/ }).click();
    await expect.poll(() => chain.locator("[aria-current=step]").textContent()).toMatch(/^Step 1/);
    await prompt().fill("a green hat instead");
    const branch = await runAndWait();
    expect((await history()).find((g) => g.generation_id === branch)?.parent_generation_id).toBe(step1);
    // The strip shows the step just run, and that step 1 has another branch.
    await expect
      .poll(() => chain.locator(".chain-step").last().textContent())
      .toBe("Step 2: a green hat instead");
    await expect.poll(() => chain.locator(".branches summary").textContent()).toBe("1 other branch");
    await expect
      .poll(() => gallery().locator(`li[data-generation="${branch}"]`).getAttribute("data-depth"))
      .toBe("2");
    await shot("06-chain-1440x900-light");
  });

  it("follows a run again after a reload mid-run, and cancels it", async () => {
    await steps().fill("50");
    await prompt().fill("a long one");
    await prompt().press("Control+Enter");
    const status = resultPanel().locator("article .status");
    await expect.poll(() => status.textContent(), { timeout: 60_000 }).toMatch(/^Step \d+ of 50$/);
    await expect.poll(() => page.title()).toMatch(/^\(1\) Step \d+\/50 · Kontext workbench$/);
    await page.reload();
    // The workspace is back: prompt, steps, the image; the run is followed again.
    await expect.poll(() => prompt().inputValue(), { timeout: 30_000 }).toBe("a long one");
    expect(await steps().inputValue()).toBe("50");
    await expect.poll(() => page.locator(".dropzone img").count()).toBe(1);
    const stepAfter = async () =>
      Number(/^Step (\d+) of 50$/.exec((await status.textContent()) ?? "")?.[1] ?? -1);
    await expect.poll(stepAfter, { timeout: 60_000 }).toBeGreaterThan(0);
    const seenStep = await stepAfter();
    await expect.poll(stepAfter, { timeout: 60_000 }).toBeGreaterThan(seenStep); // live progress
    const queue = page.getByRole("region", { name: /^Queue/ });
    await expect.poll(() => queue.locator("li").count()).toBe(1);
    await page.keyboard.press("Escape"); // Esc cancels the running generation
    await expect.poll(() => status.textContent(), { timeout: 60_000 }).toBe("Cancelled");
    await expect.poll(() => queue.locator("li").count()).toBe(0);
    await steps().fill("4");
  });

  it("counts queue positions down, never up", async () => {
    // A long generation submitted elsewhere (say by cURL) holds the engine…
    const long = await api<{ generations: Array<{ generation_id: string }> }>("/api/ai/queue", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        input_image: `data:image/png;base64,${(await gradient(page)).toString("base64")}`,
        prompt: "blocker",
        num_inference_steps: 12,
      }),
    });
    // …while the page queues three behind it.
    await page
      .getByRole("spinbutton", { name: /^Generations/ })
      .fill("3")
      .catch(async () => {
        await page.locator("details.more-options > summary").click();
        await page.getByRole("spinbutton", { name: /^Generations/ }).fill("3");
      });
    await page.evaluate(() => {
      const w = window as unknown as { positions: Record<string, number[]> };
      w.positions = {};
      new MutationObserver(() => {
        for (const a of document.querySelectorAll(".run article[data-generation]")) {
          const m = /(\d+) ahead|runs next/.exec(a.querySelector(".status")?.textContent ?? "");
          if (!m) continue;
          const id = a.getAttribute("data-generation") as string;
          const n = m[1] ? Number(m[1]) : 0;
          w.positions[id] ??= [];
          const seen = w.positions[id];
          if (seen.at(-1) !== n) seen.push(n);
        }
      }).observe(document.body, { subtree: true, childList: true, characterData: true });
    });
    await prompt().fill("three in a row");
    await prompt().press("Control+Enter");
    await expect
      .poll(() => resultPanel().locator("article.phase-succeeded").count(), {
        timeout: 150_000,
        interval: 500,
      })
      .toBe(3);
    const positions = await page.evaluate(
      () => (window as unknown as { positions: Record<string, number[]> }).positions,
    );
    const lists = Object.values(positions);
    expect(lists.length).toBe(3);
    for (const seen of lists) expect(seen).toEqual([...seen].sort((a, b) => b - a)); // only down
    expect(lists.some((seen) => seen.length >= 2)).toBe(true); // and it did count
    expect(
      (await api<{ status: string }>(`/api/ai/queue/${long.generations[0]?.generation_id}`)).status,
    ).toBe("succeeded");
    await page.getByRole("spinbutton", { name: /^Generations/ }).fill("1");
  });

  it("stars, filters and deletes in the gallery", async () => {
    const tiles = gallery().locator("li[data-generation]");
    await expect.poll(() => tiles.count()).toBeGreaterThan(8);
    const target = (await tiles.first().getAttribute("data-generation")) as string;
    await tiles
      .first()
      .getByRole("button", { name: /^Star:/ })
      .click();
    await gallery().getByRole("combobox", { name: "Show" }).selectOption("starred");
    await expect.poll(() => tiles.count()).toBe(1);
    await shot("07-gallery-starred-1440x900-light");
    await gallery().getByRole("combobox", { name: "Show" }).selectOption("all");
    await gallery().getByRole("searchbox", { name: "Search history by prompt" }).fill("SCARF");
    await expect.poll(() => tiles.count()).toBe(2);
    await gallery().getByRole("searchbox").fill("");
    await expect.poll(() => tiles.count()).toBeGreaterThan(8);

    await gallery()
      .locator(`li[data-generation="${target}"]`)
      .getByRole("button", { name: /^Open:/ })
      .click();
    await viewer().getByRole("button", { name: "Delete", exact: true }).click();
    await viewer().getByRole("button", { name: "Delete for good" }).click();
    await expect.poll(() => gallery().locator(`li[data-generation="${target}"]`).count()).toBe(0);
    const res = await fetch(`${server.url}/api/ai/queue/${target}`, { headers: AUTH });
    expect(res.status).toBe(404);
  });

  it("pages the gallery past its first page with `before`, drawing only the rows in view", async () => {
    // 250 generations, answered by hand: the first page, then what is older than its last.
    const real = (await history())[0] as HistoryItem;
    const all = Array.from({ length: 250 }, (_, i) => ({
      ...real,
      generation_id: `fake-${i}`,
      prompt: `fake ${i}`,
    }));
    const asked: string[] = [];
    await page.route("**/api/history?*", (route) => {
      const url = new URL(route.request().url());
      asked.push(url.search);
      const before = url.searchParams.get("before");
      const from = before ? all.findIndex((g) => g.generation_id === before) + 1 : 0;
      const limit = Number(url.searchParams.get("limit"));
      const page = all.slice(from, from + limit);
      return route.fulfill({
        contentType: "application/json",
        body: JSON.stringify({ count: page.length, generations: page }),
      });
    });
    await page.reload();
    const tiles = gallery().locator("li[data-generation]");
    await expect.poll(() => tiles.count(), { timeout: 30_000 }).toBeGreaterThan(0);
    expect(await tiles.count()).toBeLessThan(60); // the visible rows and a few more, not 100
    const scroller = gallery().getByTestId("gallery");
    for (let i = 0; i < 12 && !asked.some((q) => q.includes("before=fake-199")); i++) {
      await scroller.evaluate((el) => el.scrollTo(0, el.scrollHeight));
      await page.waitForTimeout(300);
    }
    expect(asked.some((q) => q.includes("before=fake-99"))).toBe(true);
    expect(asked.some((q) => q.includes("before=fake-199"))).toBe(true);
    await expect.poll(() => scroller.getAttribute("data-count")).toBe("250");
    await expect
      .poll(async () => {
        await scroller.evaluate((el) => el.scrollTo(0, el.scrollHeight));
        return gallery().locator('li[data-generation="fake-249"]').count();
      })
      .toBe(1);
    await page.unroute("**/api/history?*");
    await page.reload();
  });

  it("keeps the history across a server restart", async () => {
    const listed = () => gallery().getByTestId("gallery").getAttribute("data-count");
    await expect.poll(listed, { timeout: 30_000 }).not.toBe("0");
    const count = await listed();
    await server.stop();
    server = await startServer(serverOptions());
    await page.reload();
    await expect.poll(listed, { timeout: 30_000 }).toBe(count);
    // and the server's own count agrees
    expect(String((await history()).length)).toBe(count);
  });

  it("looks right at 1440×900 and 390×844, light and dark; on a phone the result comes first", async () => {
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.setViewportSize({ width: 1440, height: 900 });
      await page.reload();
      await expect.poll(() => gallery().locator("li[data-generation]").count()).toBeGreaterThan(0);
      // thumbnails come as blobs fetched with the key: the shot waits until every tile shows one
      await expect
        .poll(
          () =>
            gallery()
              .locator("li[data-generation] img")
              .evaluateAll((imgs) =>
                imgs.every(
                  (i) => (i as HTMLImageElement).complete && (i as HTMLImageElement).naturalWidth > 0,
                ),
              ),
          { timeout: 15_000 },
        )
        .toBe(true);
      await shot(`08-workbench-1440x900-${scheme}`);
      await page.setViewportSize({ width: 390, height: 844 });
      await expect
        .poll(() => page.evaluate(() => document.documentElement.scrollWidth))
        .toBeLessThanOrEqual(390);
      const order = await page.evaluate(() => {
        const form = document.querySelector("form.request")?.getBoundingClientRect().top ?? 0;
        const result = document.querySelector("section.run")?.getBoundingClientRect().top ?? 0;
        return result < form;
      });
      expect(order).toBe(true);
      const run = await runButton().boundingBox(); // Run stays on screen on a phone too
      expect(run && run.y >= 0 && run.y + run.height <= 844).toBe(true);
      // tap targets of 40 px at least
      const small = await page
        .locator("main button:visible, main select:visible")
        .evaluateAll((els) =>
          els.filter((e) => e.getBoundingClientRect().height < 40).map((e) => e.outerHTML.slice(0, 80)),
        );
      expect(small).toEqual([]);
      await shot(`09-phone-390x844-${scheme}`);
      await page.screenshot({
        path: path.join(SHOTS, `09-phone-390x844-${scheme}-full.png`),
        fullPage: true,
      });
    }
    await page.emulateMedia({ colorScheme: "light" });
    await page.setViewportSize({ width: 1440, height: 900 });
  });

  it("has contrast of 4.5:1 or more for text and accents, light and dark, and a visible focus ring", async () => {
    await page.getByRole("button", { name: "Copy as code" }).focus();
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      const low = await page.evaluate(() => {
        const parse = (c: string): [number, number, number, number] | null => {
          const m = /rgba?\(([\d.]+),? ([\d.]+),? ([\d.]+)(?:,? \/? ?([\d.]+))?\)/.exec(c);
          if (m) return [Number(m[1]), Number(m[2]), Number(m[3]), m[4] === undefined ? 1 : Number(m[4])];
          const s = /color\(srgb ([\d.]+) ([\d.]+) ([\d.]+)(?: \/ ([\d.]+))?\)/.exec(c);
          if (s)
            return [
              Number(s[1]) * 255,
              Number(s[2]) * 255,
              Number(s[3]) * 255,
              s[4] === undefined ? 1 : Number(s[4]),
            ];
          return null;
        };
        const lum = ([r, g, b]: number[]) => {
          const f = (v: number) => {
            const x = v / 255;
            return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
          };
          return 0.2126 * f(r ?? 0) + 0.7152 * f(g ?? 0) + 0.0722 * f(b ?? 0);
        };
        const background = (el: Element | null): number[] => {
          for (let e = el; e; e = e.parentElement) {
            const c = parse(getComputedStyle(e).backgroundColor);
            if (c && c[3] > 0.5) return c;
          }
          return parse(getComputedStyle(document.documentElement).backgroundColor) ?? [255, 255, 255, 1];
        };
        const out: string[] = [];
        const selectors = [
          "h1",
          ".top .model",
          ".banner.demo",
          ".banner.demo strong",
          ".description",
          ".hint",
          "button.run",
          "button.secondary",
          ".button.secondary",
          "button.link",
          ".prompt-help summary",
          ".empty",
          "label",
          ".queue h2 .count",
          "details > summary",
          ".output-size",
        ];
        for (const sel of selectors)
          for (const el of [...document.querySelectorAll(sel)].slice(0, 3)) {
            const fg = parse(getComputedStyle(el).color);
            if (!fg) continue;
            const bg = background(el);
            const [a, b] = [lum(fg), lum(bg)];
            const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
            if (ratio < 4.5)
              out.push(`${sel}: ${ratio.toFixed(2)} (${getComputedStyle(el).color} on ${bg.join(",")})`);
          }
        return out;
      });
      expect(low, scheme).toEqual([]);
      const ring = await page.evaluate(() => {
        const el = document.activeElement as HTMLElement;
        const st = getComputedStyle(el);
        return `${st.outlineStyle} ${st.outlineWidth}`;
      });
      expect(ring).toBe("solid 3px");
    }
    await page.emulateMedia({ colorScheme: "light" });
  });

  it("takes a file dropped anywhere on the page instead of leaving it, and lists the shortcuts with ?", async () => {
    const png = (await gradient(page, 200, 100)).toString("base64");
    const prevented = await page.evaluate((b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], "dropped.png", { type: "image/png" }));
      const over = new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true });
      document.querySelector(".workspace")?.dispatchEvent(over);
      const drop = new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true });
      document.querySelector(".workspace")?.dispatchEvent(drop);
      return over.defaultPrevented && drop.defaultPrevented;
    }, png);
    expect(prevented).toBe(true);
    await expect
      .poll(() => page.locator(".dropzone figcaption").textContent())
      .toMatch(/^dropped.png · 200×100/);
    await page.locator("h1").click();
    await page.keyboard.press("Shift+?");
    const list = page.getByRole("dialog", { name: "Keyboard shortcuts" });
    await expect.poll(() => list.isVisible()).toBe(true);
    expect(await list.textContent()).toMatch(/Esc.*Cancel the running generation/);
    await shot("10-shortcuts");
    await page.keyboard.press("Escape");
    await expect.poll(() => list.isVisible()).toBe(false);
  });

  it("shows an error in the part of the page where it happened, and the rest keeps working", async () => {
    // The server answers the history with an item the page cannot draw.
    await page.route("**/api/history?*", (route) =>
      route.fulfill({
        contentType: "application/json",
        body: JSON.stringify({
          count: 1,
          generations: [{ generation_id: "broken", status: "succeeded", prompt: "p" }],
        }),
      }),
    );
    await page.reload();
    const crashed = page.locator("[data-boundary='The gallery']");
    await expect.poll(() => crashed.textContent(), { timeout: 30_000 }).toMatch(/^The gallery hit an error:/);
    expect(await runButton().isVisible()).toBe(true);
    expect(await prompt().isEditable()).toBe(true);
    await shot("11-gallery-error");
    await page.unroute("**/api/history?*");
    await crashed.getByRole("button", { name: "Try again" }).click();
    await expect
      .poll(() => gallery().locator("li[data-generation]").count(), { timeout: 30_000 })
      .toBeGreaterThan(0);
  });

  it("raised no page error anywhere", () => {
    expect(pageErrors).toEqual([]);
  });
});

// The workbench in Debian's chromium (playwright-core) against the real server and the tiny
// engine, as a person uses it: the server has API keys on (the page asks for one; every call,
// event stream and copied command carries it), upload and run with live progress, errors beside their field,
// copy as cURL and run it, compare, a 2×2 sweep, an edit chain with a step back, cancel, the
// history across a reload and a server restart, and a phone-width layout. Screenshots go to
// test-results/screenshots/. Jobs use 4 steps (a few seconds each on CPU).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { HistoryItem } from "../../src/lib/history.js";
import { CHROMIUM } from "./global-setup.js";
import { freePort, type Server, startServer } from "./server.js";

const API_KEY = "workbench-test-key";
const AUTH = { Authorization: `Bearer ${API_KEY}` };
const serverOptions = () => ({ dataDir, port, python: inject("python"), env: { KONTEXT_API_KEYS: API_KEY } });
const SHOTS = path.resolve(import.meta.dirname, "../../test-results/screenshots");
const dataDir = mkdtempSync(path.join(tmpdir(), "kontext-workbench-"));
let port: number;
let server: Server;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
const history = async (): Promise<HistoryItem[]> =>
  (
    (await (await fetch(`${server.url}/api/history`, { headers: AUTH })).json()) as {
      generations: HistoryItem[];
    }
  ).generations;
const sha256 = async (url: string) =>
  createHash("sha256")
    .update(Buffer.from(await (await fetch(url)).arrayBuffer()))
    .digest("hex");

// page helpers, by accessible name: every control used here must have one
const prompt = () => page.getByRole("textbox", { name: /^Prompt/ });
const steps = () => page.getByRole("spinbutton", { name: /^Inference steps/ });
const seed = () => page.getByRole("spinbutton", { name: /^Seed/ });
const runButton = () => page.getByRole("button", { name: /^Run/ });
const resultPanel = () => page.getByRole("region", { name: "Result" });

/** Runs the form with Ctrl+Enter and waits for the new run's result; returns its generation id. */
async function runAndWait(): Promise<string> {
  const cards = resultPanel().locator("article");
  const before = await cards.evaluateAll((els) => els.map((e) => e.getAttribute("data-generation")));
  await prompt().press("Control+Enter");
  const fresh = before.map((id) => `:not([data-generation="${id}"])`).join("");
  const card = resultPanel().locator(`article.phase-succeeded${fresh}`);
  await card.first().waitFor({ timeout: 120_000 });
  return (await card.first().getAttribute("data-generation")) as string;
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  port = await freePort();
  server = await startServer(serverOptions());
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
  page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(err.message));
  await page.goto(server.url);
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("workbench in chromium (real server, tiny engine)", () => {
  let first: string; // the first run's generation id
  let copied: string; // the generation the copied cURL made (the same image as the first)

  it("asks for the API key the server wants, then builds the form from the schema", async () => {
    const keyForm = page.getByRole("form", { name: "API key" });
    await expect.poll(() => keyForm.isVisible()).toBe(true);
    await keyForm.getByLabel(/wants an API key/).fill(API_KEY);
    await keyForm.getByRole("button", { name: "Use key" }).click();
    await expect.poll(() => keyForm.isVisible()).toBe(false);
  });

  it("builds the form from the schema, labels every control, and says the demo model is loaded", async () => {
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
    const unlabelled = await page.locator("input, select, textarea, button").evaluateAll((els) =>
      els
        .filter((el) => {
          const e = el as HTMLInputElement;
          if (e.type === "hidden") return false;
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
    await shot("01-empty-form");
  });

  it("puts the server's errors in words beside the field that caused them", async () => {
    await prompt().fill("   ");
    await runButton().click();
    await expect.poll(() => page.locator("#f-input_image-error").textContent()).toMatch(/required/);
    await expect.poll(() => page.locator("#f-prompt-error").textContent()).toMatch(/non-space character/);
    expect(await prompt().getAttribute("aria-invalid")).toBe("true");
  });

  it("uploads an image and runs it: progress advances step by step, previews update, the result shows", async () => {
    // A 320×240 gradient PNG, drawn by the browser itself.
    const png = await page.evaluate(async () => {
      const c = document.createElement("canvas");
      c.width = 320;
      c.height = 240;
      const g = c.getContext("2d") as CanvasRenderingContext2D;
      const grad = g.createLinearGradient(0, 0, 320, 240);
      grad.addColorStop(0, "#d33");
      grad.addColorStop(1, "#33d");
      g.fillStyle = grad;
      g.fillRect(0, 0, 320, 240);
      const blob = await new Promise<Blob>((r) => c.toBlob((b) => r(b as Blob), "image/png"));
      return [...new Uint8Array(await blob.arrayBuffer())];
    });
    await page.setInputFiles("#f-input_image-file", {
      name: "gradient.png",
      mimeType: "image/png",
      buffer: Buffer.from(png),
    });
    await expect
      .poll(() => page.getByRole("img", { name: "Input image: gradient.png" }).isVisible())
      .toBe(true);
    await expect.poll(() => page.getByTestId("output-size").textContent()).toBe("1184 × 880");
    await prompt().fill("add a red hat");
    await steps().fill("4");
    await seed().fill("42");

    // Record every step the progress bar shows and every preview it draws.
    await page.evaluate(() => {
      const w = window as unknown as { seenSteps: string[]; seenPreviews: Set<string> };
      w.seenSteps = [];
      w.seenPreviews = new Set();
      new MutationObserver(() => {
        for (const p of document.querySelectorAll("progress[data-step]")) {
          const s = p.getAttribute("data-step") as string;
          if (w.seenSteps.at(-1) !== s) w.seenSteps.push(s);
        }
        for (const img of document.querySelectorAll<HTMLImageElement>("img.preview"))
          w.seenPreviews.add(img.src);
      }).observe(document.body, { subtree: true, childList: true, attributes: true });
    });
    first = await runAndWait();
    const seen = await page.evaluate(() => {
      const w = window as unknown as { seenSteps: string[]; seenPreviews: Set<string> };
      return { steps: w.seenSteps, previews: w.seenPreviews.size };
    });
    expect(seen.steps.map(Number)).toEqual([...seen.steps.map(Number)].sort((a, b) => a - b)); // only forward
    expect(new Set(seen.steps).size).toBeGreaterThanOrEqual(3); // 0, some step in between, 4
    expect(seen.previews).toBeGreaterThanOrEqual(2);

    const card = resultPanel().locator(`article[data-generation="${first}"]`);
    expect(await card.locator(".status").textContent()).toBe("Done");
    expect(await card.locator(".elapsed").textContent()).toMatch(/^\d+\.\d s$/);
    expect(await card.locator(".result-meta").textContent()).toContain("seed 42 · 1184×880");
    expect(
      await card.getByRole("img", { name: /^Result/ }).evaluate((i) => (i as HTMLImageElement).naturalWidth),
    ).toBe(1184);
    await shot("02-run-result");
  });

  it("copies the form as cURL; the copied command, run in a shell, makes the same image", async () => {
    await page.getByRole("button", { name: "Copy as code" }).click();
    const dialog = page.getByRole("dialog", { name: "Copy as code" });
    await dialog.getByRole("radio", { name: "Python" }).check();
    expect(await dialog.locator("pre").textContent()).toContain("urllib.request");
    await dialog.getByRole("radio", { name: "cURL" }).check();
    await dialog.getByRole("radio", { name: "Sync", exact: true }).check();
    await shot("03-copy-as-code");
    await dialog.getByRole("button", { name: "Copy", exact: true }).click();
    await expect.poll(() => dialog.getByRole("status").textContent()).toMatch(/^Copied cURL/);
    const code = await page.evaluate(() => navigator.clipboard.readText());
    await dialog.getByRole("button", { name: "Close" }).click();

    expect(code).toContain(`${server.url}/api/ai/images/edit`);
    expect(code).toContain("Authorization: Bearer $KONTEXT_API_KEY");
    expect(code).not.toContain(API_KEY);
    const run = () =>
      execFileSync("bash", ["-c", code], {
        encoding: "utf8",
        timeout: 120_000,
        env: { ...process.env, KONTEXT_API_KEY: API_KEY },
      });
    const out = JSON.parse(run()) as {
      generation_id: string;
      images: Array<{ url: string }>;
      seed: number;
      width: number;
      height: number;
    };
    expect([out.seed, out.width, out.height]).toEqual([42, 1184, 880]);
    copied = out.generation_id;
    // Same input bytes, prompt, steps and seed: the very same image as the workbench's run.
    const ours = (await history()).find((g) => g.generation_id === first) as HistoryItem;
    expect(await sha256(out.images[0]?.url as string)).toBe(await sha256(ours.result_url as string));
  });

  it("compares two results side by side and with a slider", async () => {
    // The cURL run shows up in the history by itself (GET /api/events).
    const boxes = page.getByRole("region", { name: "History" }).getByRole("checkbox", { name: /^Compare: / });
    await expect.poll(() => boxes.count()).toBe(2);
    await boxes.nth(0).check();
    await boxes.nth(1).check();
    const compare = page.getByRole("region", { name: /^Compare/ });
    expect(await compare.locator("figure").count()).toBe(2);
    await compare.getByLabel("Slider position").fill("20");
    expect(
      await compare.getByRole("img", { name: /^Left:/ }).evaluate((i) => (i as HTMLElement).style.clipPath),
    ).toBe("inset(0px 80% 0px 0px)");
    await shot("04-compare");
    await compare.getByRole("button", { name: "Clear comparison" }).click();
  });

  it("runs a 2×2 sweep (guidance × seed) and shows it as a labelled grid", async () => {
    await page.getByText("Sweep: a grid across one parameter and seeds").click();
    await page.getByRole("combobox", { name: "Parameter" }).selectOption("guidance");
    await page.getByRole("textbox", { name: "Guidance values" }).fill("1.5, 3.5");
    await page.getByRole("textbox", { name: "Seeds" }).fill("1, 2");
    await page.getByRole("button", { name: "Run sweep" }).click();
    const grid = page.getByRole("region", { name: /^Sweep/ });
    await expect
      .poll(() => grid.locator("article.phase-succeeded").count(), { timeout: 150_000, interval: 500 })
      .toBe(4);
    expect(await grid.locator("thead th").allTextContents()).toEqual(["seed 1", "seed 2"]);
    expect(await grid.locator("tbody th").allTextContents()).toEqual(["guidance 1.5", "guidance 3.5"]);
    const cells = await grid
      .locator("article")
      .evaluateAll((els) => els.map((e) => e.getAttribute("data-generation")));
    const byId = new Map((await history()).map((g) => [g.generation_id, g]));
    expect(cells.map((id) => [byId.get(id as string)?.guidance, byId.get(id as string)?.seed])).toEqual([
      [1.5, 1],
      [1.5, 2],
      [3.5, 1],
      [3.5, 2],
    ]);
    await shot("05-sweep");
  });

  it("continues editing twice, shows the chain as a tree, and goes back to a step in one click", async () => {
    // From the history (the page was reloaded): the newest "add a red hat" with seed 42 is the
    // cURL run. Its image is byte-identical to the first run's; the server links a step to the
    // newest generation whose result has the input's bytes.
    const hist = page.getByRole("region", { name: "History" });
    await hist.getByRole("button", { name: "Continue editing: add a red hat (seed 42)" }).first().click();
    const chain = page.getByRole("navigation", { name: "Edit chain" });
    await expect.poll(() => chain.getByRole("button").count()).toBe(2);
    await prompt().fill("make the hat blue");
    const step2 = await runAndWait();
    await resultPanel()
      .getByRole("button", { name: /^Continue editing/ })
      .click();
    await expect.poll(() => chain.getByRole("button").count()).toBe(3);
    await prompt().fill("add a scarf");
    const step3 = await runAndWait();

    // The server linked each step to the one before: the history shows one nested chain.
    const byId = new Map((await history()).map((g) => [g.generation_id, g]));
    expect(byId.get(step2)?.parent_generation_id).toBe(copied);
    expect(byId.get(step3)?.parent_generation_id).toBe(step2);
    await expect
      .poll(() => hist.locator(`li[data-generation="${step3}"]`).getAttribute("data-depth"))
      .toBe("3");
    await shot("06-chain");

    // One click back to step 1: its result is the input again, and the next run branches from it.
    await chain.getByRole("button", { name: "Go back to Step 1: add a red hat" }).click();
    await expect.poll(() => chain.locator("[aria-current=step]").textContent()).toBe("Step 1: add a red hat");
    await expect
      .poll(() => page.locator(".dropzone figcaption").textContent())
      .toMatch(/^Step 1: add a red hat/);
    await prompt().fill("a green hat instead");
    await prompt().press("Control+Enter");
    await expect
      .poll(async () => (await history()).find((g) => g.prompt === "a green hat instead")?.status, {
        timeout: 120_000,
      })
      .toBe("succeeded");
    const branch = (await history()).find((g) => g.prompt === "a green hat instead") as HistoryItem;
    expect(branch.parent_generation_id).toBe(copied);
    await expect.poll(() => hist.locator(`li[data-generation="${copied}"] > ul > li`).count()).toBe(2);
    await shot("07-chain-branch");
  });

  it("cancels a running generation", async () => {
    await steps().fill("50");
    await prompt().fill("a long one");
    await prompt().press("Control+Enter");
    const status = resultPanel().locator("article .status");
    await expect.poll(() => status.textContent(), { timeout: 60_000 }).toMatch(/^Step \d+ of 50$/);
    await page.getByRole("button", { name: "Cancel", exact: true }).click();
    await expect.poll(() => status.textContent(), { timeout: 60_000 }).toBe("Cancelled");
    await steps().fill("4");
  });

  it("keeps the history across a reload and a server restart; searches it; reuses parameters", async () => {
    const hist = page.getByRole("region", { name: "History" });
    const items = hist.locator("li[data-generation]");
    await page.reload();
    await expect.poll(() => items.count()).toBe(10); // run, cURL, 4 sweep cells, 2 chain steps, branch, cancelled
    await hist.getByRole("searchbox", { name: "Search history by prompt" }).fill("SCARF");
    await expect.poll(() => items.count()).toBe(1);
    await hist.getByRole("searchbox").fill("");

    await server.stop();
    server = await startServer(serverOptions());
    await page.reload();
    await expect.poll(() => items.count()).toBe(10);
    const scarf = hist.getByRole("listitem", { name: "History: add a scarf" });
    expect(await scarf.getAttribute("data-depth")).toBe("3");

    await hist.getByRole("button", { name: /^Reuse parameters: make the hat blue/ }).click();
    await expect.poll(() => prompt().inputValue()).toBe("make the hat blue");
    expect(await steps().inputValue()).toBe("4");
    expect(await seed().inputValue()).toMatch(/^\d+$/);
    // Reusing a chain step takes its parent's result as the input: the chain is back on show.
    await expect
      .poll(() =>
        page.getByRole("navigation", { name: "Edit chain" }).locator("[aria-current=step]").textContent(),
      )
      .toBe("Step 1: add a red hat");
    await shot("08-after-restart");
  });

  it("is usable at phone width: one column, nothing wider than the screen", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.reload();
    await expect
      .poll(() => page.getByRole("region", { name: "History" }).locator("li").count())
      .toBeGreaterThan(0);
    const widths = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      form: document.querySelector("form.request")?.getBoundingClientRect().width ?? 0,
    }));
    expect(widths.page).toBeLessThanOrEqual(390);
    expect(widths.form).toBeGreaterThan(300);
    await runButton().scrollIntoViewIfNeeded();
    expect(await runButton().isVisible()).toBe(true);
    await shot("09-phone");
    await page.setViewportSize({ width: 1280, height: 800 });
    expect(pageErrors).toEqual([]);
  });
});

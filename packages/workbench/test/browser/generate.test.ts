// Generate mode (text-to-image, issue 15 §5) in Debian's chromium against the real server and the
// tiny engine: the mode switch, the form from the model's json_generate_request_schema (no input
// image, aspect_ratio without match_input_image), a run made from the prompt alone that lands in
// the history like an edit, copied code for POST /api/ai/images/generate, and the result continued
// as the input of the next edit. Screenshots at 1440×900 and 390×844, light and dark, in
// test-results/screenshots/ (19-…). No page error anywhere. Runs use 4 steps on the CPU.
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { HistoryItem } from "@kontext/client";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { CHROMIUM } from "./global-setup.js";
import { freePort, type Server, startServer } from "./server.js";

const SHOTS = path.resolve(import.meta.dirname, "../../test-results/screenshots");
const dataDir = mkdtempSync(path.join(tmpdir(), "kontext-workbench-generate-"));
let server: Server;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
/** every request body the page sent to the queue */
const sent: Array<Record<string, unknown>> = [];
let generated = "";

const shot = (name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
const prompt = () => page.locator("#f-prompt");
const resultPanel = () => page.getByRole("region", { name: "Result" });
const generateMode = () => page.getByRole("radio", { name: "Generate", exact: true });
const editMode = () => page.getByRole("radio", { name: "Edit an image" });
const aspect = () => page.getByRole("combobox", { name: /^Aspect ratio/ });

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  server = await startServer({ dataDir, port: await freePort(), python: inject("python") });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(err.message));
  await page.route("**/api/ai/queue", (route) => {
    if (route.request().method() === "POST")
      sent.push(route.request().postDataJSON() as Record<string, unknown>);
    return route.continue();
  });
  await page.goto(server.url);
  await page.waitForFunction(
    () => (document.getElementById("f-num_inference_steps") as HTMLInputElement | null)?.value === "28",
    null,
    { timeout: 60_000 },
  );
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("Generate mode: text-to-image (real server, tiny engine)", () => {
  it("switches to a form from the generate schema: no input image, aspect ratios without match_input_image", async () => {
    expect(await editMode().isChecked()).toBe(true);
    expect(await page.locator("#f-input_image-file").count()).toBe(1);
    await generateMode().check();
    await expect.poll(() => page.getByRole("form", { name: "Generate request" }).count()).toBe(1);
    expect(await page.locator("#mode-hint").textContent()).toMatch(/from the prompt alone/);
    expect(await page.locator("#f-input_image-file").count()).toBe(0);
    expect(await page.locator(".ref-slot").count()).toBe(0);
    const options = await aspect().locator("option").allTextContents();
    expect(options).not.toContain("match_input_image");
    expect(await aspect().inputValue()).toBe("1:1");
    expect(await page.getByTestId("output-size").textContent()).toBe("1024 × 1024");
    await aspect().selectOption("16:9");
    expect(await page.getByTestId("output-size").textContent()).toBe("1392 × 752");
  });

  it("copies code for POST /api/ai/images/generate, with no image in it", async () => {
    await prompt().fill("a lighthouse on a cliff at dusk");
    await page.getByRole("button", { name: "Copy as code" }).click();
    const dialog = page.getByRole("dialog", { name: "Copy as code" });
    const code = (await dialog.locator("pre").textContent()) as string;
    expect(code).toContain("/api/ai/images/generate");
    expect(code).not.toContain("input_image");
    expect(code).toContain('"aspect_ratio": "16:9"');
    await dialog.getByRole("button", { name: "Close" }).click();
  });

  it("makes an image from the prompt alone; it goes to the history like an edit, without a before/after", async () => {
    await page.getByRole("spinbutton", { name: /^Inference steps/ }).fill("4");
    await prompt().press("Control+Enter");
    const card = resultPanel().locator("article.phase-succeeded");
    await card.first().waitFor({ timeout: 240_000 });
    expect(sent[0]).toMatchObject({ prompt: "a lighthouse on a cliff at dusk", aspect_ratio: "16:9" });
    expect(sent[0]).not.toHaveProperty("input_image");
    expect(await card.first().locator(".result-meta").textContent()).toMatch(/1392×752/);
    expect(
      await card
        .first()
        .getByRole("button", { name: /^Before and after/ })
        .count(),
    ).toBe(0);
    generated = (await card.first().getAttribute("data-generation")) as string;
    const items = (await (await fetch(`${server.url}/api/history`)).json()) as { generations: HistoryItem[] };
    const item = items.generations.find((g) => g.generation_id === generated);
    expect(item).toMatchObject({ status: "succeeded", input_url: null, width: 1392, height: 752 });
    await page
      .getByRole("region", { name: "History" })
      .locator(`li[data-generation="${generated}"]`)
      .waitFor();
    await page.waitForTimeout(300);
    await shot("19-generate-1440x900-light");
  });

  it("keeps Generate mode across a reload, and each mode its own aspect ratio", async () => {
    await page.waitForTimeout(600); // the workspace is saved 250 ms after a change
    await page.reload();
    await expect.poll(() => generateMode().isChecked(), { timeout: 30_000 }).toBe(true);
    expect(await aspect().inputValue()).toBe("16:9");
    await editMode().check();
    expect(await aspect().inputValue()).toBe("match_input_image");
    await generateMode().check();
    expect(await aspect().inputValue()).toBe("16:9");
  });

  it("looks right at 1440×900 and 390×844, light and dark", async () => {
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.setViewportSize({ width: 1440, height: 900 });
      await page.waitForTimeout(200);
      await shot(`19-generate-1440x900-${scheme}`);
      await page.setViewportSize({ width: 390, height: 844 });
      await expect
        .poll(() => page.evaluate(() => document.documentElement.scrollWidth))
        .toBeLessThanOrEqual(390);
      const small = await page
        .locator(".mode-switch label")
        .evaluateAll((els) => els.filter((e) => e.getBoundingClientRect().height < 40).length);
      expect(small).toBe(0);
      await page.locator(".mode-switch").scrollIntoViewIfNeeded();
      await shot(`19-generate-form-390x844-${scheme}`);
      await resultPanel().scrollIntoViewIfNeeded();
      await shot(`19-generate-result-390x844-${scheme}`);
    }
    await page.emulateMedia({ colorScheme: "light" });
    await page.setViewportSize({ width: 1440, height: 900 });
  });

  it("continues the generated image as the input of the next edit (a chain)", async () => {
    await resultPanel()
      .getByRole("button", { name: /^Continue editing/ })
      .first()
      .click();
    await expect.poll(() => editMode().isChecked()).toBe(true);
    await expect
      .poll(() => page.locator(".dropzone figcaption").textContent(), { timeout: 30_000 })
      .toMatch(/^result of “a lighthouse on a cliff at dusk” · 1392×752/);
    await prompt().fill("add a full moon");
    await prompt().press("Control+Enter");
    const card = resultPanel().locator(`article.phase-succeeded:not([data-generation="${generated}"])`);
    await card.first().waitFor({ timeout: 240_000 });
    expect(sent[1]?.input_image).toMatch(/^data:image\/webp;base64,/);
    const next = (await card.first().getAttribute("data-generation")) as string;
    const items = (await (await fetch(`${server.url}/api/history`)).json()) as { generations: HistoryItem[] };
    expect(items.generations.find((g) => g.generation_id === next)?.parent_generation_id).toBe(generated);
    const chain = page.getByRole("navigation", { name: "Edit chain" });
    await expect
      .poll(() => chain.locator(".chain-step").allTextContents())
      .toEqual(["Generated: a lighthouse on a cliff at dusk", "Step 1: add a full moon"]);
  });

  it("raised no page error", () => {
    expect(pageErrors).toEqual([]);
  });
});

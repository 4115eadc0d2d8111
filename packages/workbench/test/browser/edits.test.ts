// Issue 15's masked edits and reference images in the workbench, in Debian's chromium against the
// real server and the tiny engine: a mask painted with the pointer over a 12 MP photo (brush,
// erase, feather, invert, clear; the overlay on the picture and on the thumbnail; kept across a
// reload) is sent with a run as a PNG at the photo's size, white where painted; a second
// reference image is dropped beside the input, kept across a reload, in copied code and sent with
// a run. Screenshots at 1440×900 and 390×844, light and dark, in test-results/screenshots/
// (17-… and 18-…). No page error anywhere. Runs use 4 steps on the CPU.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { CHROMIUM } from "./global-setup.js";
import { freePort, type Server, startServer } from "./server.js";

const SHOTS = path.resolve(import.meta.dirname, "../../test-results/screenshots");
const dataDir = mkdtempSync(path.join(tmpdir(), "kontext-workbench-edits-"));
let server: Server;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
/** every request body the page sent to the queue */
const sent: Array<Record<string, string>> = [];

/** A screenshot once the page has painted twice: right after a resize or a scroll Chromium may
 * not have repainted the whole viewport yet (the phone shots came out partly blank). */
const shot = async (name: string) => {
  await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
};
const prompt = () => page.locator("#f-prompt");
const painter = () => page.getByRole("dialog", { name: "Mask: paint what to change" });
const resultPanel = () => page.getByRole("region", { name: "Result" });

/** A JPEG or PNG drawn by the browser: a gradient with a disc, `w`×`h`. */
async function picture(w: number, h: number, type: "image/jpeg" | "image/png", hue = 0): Promise<Buffer> {
  const b64 = await page.evaluate(
    async ([w, h, type, hue]) => {
      const c = new OffscreenCanvas(w as number, h as number);
      const g = c.getContext("2d") as OffscreenCanvasRenderingContext2D;
      const grad = g.createLinearGradient(0, 0, w as number, h as number);
      grad.addColorStop(0, `hsl(${hue} 70% 60%)`);
      grad.addColorStop(1, `hsl(${(hue as number) + 160} 60% 35%)`);
      g.fillStyle = grad;
      g.fillRect(0, 0, w as number, h as number);
      g.fillStyle = "#f4e4b0";
      g.beginPath();
      g.arc((w as number) * 0.6, (h as number) * 0.45, Math.min(w as number, h as number) / 5, 0, 7);
      g.fill();
      const bytes = new Uint8Array(
        await (await c.convertToBlob({ type: type as string, quality: 0.9 })).arrayBuffer(),
      );
      let out = "";
      for (let i = 0; i < bytes.length; i += 0x8000)
        out += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(out);
    },
    [w, h, type, hue] as const,
  );
  return Buffer.from(b64, "base64");
}

/** A PNG data URI's width, height and the share of white pixels (decoded by the browser). */
async function readMask(
  uri: string,
): Promise<{ width: number; height: number; white: number; grey: number; corner: number }> {
  return page.evaluate(async (uri) => {
    const bmp = await createImageBitmap(await (await fetch(uri)).blob());
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const g = c.getContext("2d") as OffscreenCanvasRenderingContext2D;
    g.drawImage(bmp, 0, 0);
    const { data } = g.getImageData(0, 0, bmp.width, bmp.height);
    let white = 0;
    let grey = 0;
    for (let i = 0; i < data.length; i += 4) {
      const v = data[i] as number;
      if (v > 250) white++;
      else if (v > 5) grey++;
    }
    const n = bmp.width * bmp.height;
    return {
      width: bmp.width,
      height: bmp.height,
      white: white / n,
      grey: grey / n,
      corner: data[0] as number,
    };
  }, uri);
}

/** A drag across the painter's stage, from and to fractions of its box. */
async function paint(from: [number, number], to: [number, number]): Promise<void> {
  const box = await page.getByTestId("mask-stage").boundingBox();
  if (!box) throw new Error("no painter stage");
  const at = ([fx, fy]: [number, number]) => [box.x + fx * box.width, box.y + fy * box.height] as const;
  await page.mouse.move(...at(from));
  await page.mouse.down();
  await page.mouse.move(...at(to), { steps: 12 });
  await page.mouse.up();
}

beforeAll(async () => {
  mkdirSync(SHOTS, { recursive: true });
  server = await startServer({ dataDir, port: await freePort(), python: inject("python") });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
  page = await context.newPage();
  page.on("pageerror", (err) => pageErrors.push(err.message));
  await page.route(/\/api\/ai\/(queue|images\/generate)$/, (route) => {
    if (route.request().method() === "POST")
      sent.push(route.request().postDataJSON() as Record<string, string>);
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

describe("masked edits and reference images (real server, tiny engine)", () => {
  it("paints a mask over a 12 MP photo: brush, erase, feather, invert, clear, a translucent overlay", async () => {
    await page.setInputFiles("#f-input_image-file", {
      name: "IMG_4032.jpg",
      mimeType: "image/jpeg",
      buffer: await picture(4000, 3000, "image/jpeg"),
    });
    await expect.poll(() => page.locator(".dropzone figcaption").textContent()).toMatch(/4000×3000/);
    await page.getByRole("button", { name: "Paint mask" }).click();
    await painter().waitFor();
    expect(await page.getByTestId("mask-status").textContent()).toMatch(/^Nothing painted/);
    const canvas = page.getByTestId("mask-paint");
    // painted on a display-size canvas, not the photo's 12 MP
    expect(
      await canvas.evaluate((c) => [(c as HTMLCanvasElement).width, (c as HTMLCanvasElement).height]),
    ).toEqual([2048, 1536]);
    const [stage, overlay] = await Promise.all([
      page.getByTestId("mask-stage").boundingBox(),
      canvas.boundingBox(),
    ]);
    expect(overlay).toEqual(stage); // the overlay lies exactly over the picture
    expect(await canvas.evaluate((c) => getComputedStyle(c).opacity)).toBe("0.55");

    await painter().getByRole("slider", { name: "Brush size" }).fill("40");
    await paint([0.45, 0.3], [0.75, 0.6]);
    await expect.poll(() => page.getByTestId("mask-status").textContent()).toMatch(/^Painted/);
    await painter().getByRole("radio", { name: "Erase" }).check();
    await paint([0.45, 0.3], [0.75, 0.6]);
    await expect.poll(() => page.getByTestId("mask-status").textContent()).toMatch(/^Nothing painted/);
    await painter().getByRole("button", { name: "Invert" }).click(); // all of it may change
    await expect.poll(() => page.getByTestId("mask-status").textContent()).toMatch(/^Painted/);
    // Download mask saves what is sent: all white now, up to the corners (the feather does not darken the border)
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      painter().getByRole("button", { name: "Download mask" }).click(),
    ]);
    expect(download.suggestedFilename()).toBe("mask.png");
    const saved = readFileSync(await download.path());
    const all = await readMask(`data:image/png;base64,${saved.toString("base64")}`);
    expect([all.width, all.height, all.white, all.corner]).toEqual([4000, 3000, 1, 255]);
    await painter().getByRole("button", { name: "Clear", exact: true }).click();
    await expect.poll(() => page.getByTestId("mask-status").textContent()).toMatch(/^Nothing painted/);

    await painter().getByRole("radio", { name: "Brush" }).check();
    await paint([0.5, 0.3], [0.7, 0.55]);
    await paint([0.7, 0.3], [0.5, 0.55]);
    await painter().getByRole("slider", { name: "Feather" }).fill("24");
    await page.mouse.move(0, 0);
    await page.waitForTimeout(200);
    await shot("17-mask-painter-1440x900-light");
    await painter().getByRole("button", { name: "Done" }).click();
    await expect.poll(() => painter().isVisible()).toBe(false);
    expect(await page.getByTestId("mask-state").textContent()).toMatch(/only the painted part changes/);
    expect(await page.getByTestId("mask-thumb").isVisible()).toBe(true);
    expect(await page.getByRole("button", { name: "Edit mask" }).count()).toBe(1);
  });

  it("puts a second reference beside the input; both it and the mask survive a reload and are in copied code", async () => {
    const slot = page.locator('.ref-slot[data-field="input_image_2"]');
    expect(await page.locator(".ref-slot").count()).toBe(1); // the next empty one only
    await page.setInputFiles("#f-input_image_2-file", {
      name: "hat.png",
      mimeType: "image/png",
      buffer: await picture(512, 512, "image/png", 200),
    });
    await expect.poll(() => slot.getByRole("img", { name: "Input image 2: hat.png" }).count()).toBe(1);
    await expect.poll(() => page.locator(".ref-slot").count()).toBe(2);
    await page.waitForTimeout(700); // the workspace and the mask's pixels are saved after a pause
    await page.reload();
    await expect
      .poll(() => slot.getByRole("img", { name: "Input image 2: hat.png" }).count(), { timeout: 30_000 })
      .toBe(1);
    await expect.poll(() => page.getByTestId("mask-state").count(), { timeout: 30_000 }).toBe(1);
    expect(await page.getByTestId("mask-thumb").isVisible()).toBe(true);

    await page.getByRole("button", { name: "Copy as code" }).click();
    const dialog = page.getByRole("dialog", { name: "Copy as code" });
    const code = (await dialog.locator("pre").textContent()) as string;
    expect(code).toContain("base64 < 'hat.png'");
    expect(code).toContain('"input_image_2": "data:image/png;base64,');
    expect(code).toContain("Reads mask.png from the current directory: the painted mask");
    expect(code).toContain('"mask_image": "data:image/png;base64,');
    await dialog.getByRole("button", { name: "Close" }).click();
  });

  it("sends the painted mask (a PNG at the photo's size, white where painted) and the reference with a run", async () => {
    await page.getByRole("spinbutton", { name: /^Inference steps/ }).fill("4");
    await prompt().fill("put the hat on the moon");
    const t0 = Date.now();
    await prompt().press("Control+Enter");
    await expect
      .poll(
        async () =>
          sent.length || (await page.locator(".error-summary, .notice").allTextContents()).join(" "),
        {
          timeout: 30_000,
        },
      )
      .toBe(1);
    const sendMs = Date.now() - t0;
    const body = sent[0] as Record<string, string>;
    expect(body.input_image_2).toMatch(/^data:image\/png;base64,/);
    expect(body.mask_image).toMatch(/^data:image\/png;base64,/);
    const mask = await readMask(body.mask_image as string);
    expect([mask.width, mask.height]).toEqual([4000, 3000]);
    expect(mask.white).toBeGreaterThan(0.01); // the two strokes
    expect(mask.white).toBeLessThan(0.4);
    expect(mask.grey).toBeGreaterThan(0); // the feathered edge
    expect(mask.corner).toBe(0); // nothing painted there: black
    console.log(`mask at 4000×3000 exported and sent in ${sendMs} ms`);
    const card = resultPanel().locator("article.generation:not(.phase-queued):not(.phase-processing)");
    await card
      .first()
      .waitFor({ timeout: 150_000 })
      .catch((err) => {
        throw new Error(`${err}\nthe server said:\n${server.log.join("").slice(-3000)}`);
      });
    expect(await card.first().locator(".status").textContent()).toBe("Done");
    // the server kept both with the generation: the reference, and the mask at the photo's size
    const id = (await card.first().getAttribute("data-generation")) as string;
    const items = (await (await fetch(`${server.url}/api/history`)).json()) as {
      generations: Array<Record<string, unknown>>;
    };
    const item = items.generations.find((g) => g.generation_id === id);
    expect(item?.references).toMatchObject([{ field: "input_image_2", width: 512, height: 512 }]);
    expect(item?.mask).toMatchObject({ field: "mask_image", width: 4000, height: 3000 });
  }, 240_000);

  it("looks right at 1440×900 and 390×844, light and dark, with the mask and a reference", async () => {
    for (const scheme of ["light", "dark"] as const) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.setViewportSize({ width: 1440, height: 900 });
      await page.locator(".refs").scrollIntoViewIfNeeded();
      await shot(`18-mask-references-1440x900-${scheme}`);
      await page.locator(".dropzone").scrollIntoViewIfNeeded();
      await shot(`18-mask-thumbnail-1440x900-${scheme}`);
      await page.setViewportSize({ width: 390, height: 844 });
      await expect
        .poll(() => page.evaluate(() => document.documentElement.scrollWidth))
        .toBeLessThanOrEqual(390);
      await page.locator(".refs").scrollIntoViewIfNeeded();
      await shot(`18-mask-references-390x844-${scheme}`);
      await page.getByRole("button", { name: "Edit mask" }).click();
      await painter().waitFor();
      await page.waitForTimeout(200);
      await shot(`17-mask-painter-390x844-${scheme}`);
      await painter().getByRole("button", { name: "Done" }).click();
    }
    await page.emulateMedia({ colorScheme: "light" });
    await page.setViewportSize({ width: 1440, height: 900 });
  });

  it("raised no page error", () => {
    expect(pageErrors).toEqual([]);
  });
});

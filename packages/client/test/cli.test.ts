// The `kontext` command end to end, as a user runs it (bin/kontext.js), against the real server
// (real engine, tiny model) named by KONTEXT_URL.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { encodePng, gradientPng } from "../src/cli/png.js";
import { freePort } from "./support.js";

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../bin/kontext.js");
let dir: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function kontext(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        cwd: dir,
        env: { ...process.env, KONTEXT_URL: inject("serverUrl"), KONTEXT_API_KEY: inject("apiKey"), ...env },
        timeout: 110_000,
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err.code as number | undefined) ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), "kontext-cli-"));
  writeFileSync(path.join(dir, "in.png"), gradientPng(64, 48));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("kontext edit", () => {
  it("edits an image file into an output file, drawing a progress bar", async () => {
    const r = await kontext([
      "edit",
      "-i",
      "in.png",
      "-p",
      "make it blue",
      "-o",
      "out.webp",
      "--steps",
      "4",
      "--seed",
      "3",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^queued [0-9a-f-]{36}/m);
    expect(r.stderr).toMatch(/^started: \d+x\d+, seed 3$/m);
    for (const step of [1, 2, 3, 4])
      expect(r.stderr).toMatch(new RegExp(`\\[[█░]+\\]\\s+\\d+% step ${step}/4`));
    expect(r.stderr).toMatch(/\[█+\] 100% step 4\/4/);
    expect(r.stderr).toMatch(/^saved out\.webp \(\d+x\d+, seed 3/m);
    const out = readFileSync(path.join(dir, "out.webp"));
    expect(out.subarray(0, 4).toString()).toBe("RIFF");
    expect(out.subarray(8, 12).toString()).toBe("WEBP");
  });

  it("takes the output format from the file name (.png) and other fields with --set", async () => {
    const r = await kontext([
      "edit",
      "-i",
      "in.png",
      "-p",
      "p",
      "-o",
      "out.png",
      "-s",
      "4",
      "--set",
      "guidance=3.5",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(path.join(dir, "out.png")).subarray(1, 4).toString()).toBe("PNG");
  });

  it("a bad parameter exits 1 with the server's message, and writes nothing", async () => {
    const r = await kontext(["edit", "-i", "in.png", "-p", "p", "-o", "bad.webp", "--steps", "2"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      "kontext: num_inference_steps: must be an integer from 4 to 50, got 2 (HTTP 400, invalid_request)",
    );
    expect(existsSync(path.join(dir, "bad.webp"))).toBe(false);
    const g = await kontext(["edit", "-i", "in.png", "-p", "p", "-o", "bad.webp", "--guidance", "lots"]);
    expect(g.code).toBe(1);
    expect(g.stderr).toContain('guidance: must be a number from 0 to 10, got "lots"');
    const u = await kontext(["edit", "-i", "in.png", "-p", "p", "-o", "bad.webp", "--set", "stength=1"]);
    expect(u.stderr).toContain("stength: unknown field");
  });

  it("passes --strength, --true-cfg-scale, --negative-prompt and --lora as request fields", async () => {
    const base = ["edit", "-i", "in.png", "-p", "p", "-o", "bad.webp"];
    const s = await kontext([...base, "--strength", "0"]);
    expect(s.code).toBe(1);
    expect(s.stderr).toContain("strength: must be a number above 0 and at most 1, got 0");
    const t = await kontext([...base, "--negative-prompt", "blur", "--true-cfg-scale", "11"]);
    expect(t.stderr).toContain("true_cfg_scale: must be a number from 1 to 10, got 11");
    const l = await kontext([...base, "--lora", "styles/a:0.5", "--lora", "b"]);
    expect(l.code).toBe(1);
    expect(l.stderr).toContain("(HTTP 400, lora_refused)");
    expect(existsSync(path.join(dir, "bad.webp"))).toBe(false);
  });

  it("sends --reference images and a --mask as input_image_2..3 and mask_image", async () => {
    writeFileSync(path.join(dir, "ref.png"), gradientPng(32, 32));
    writeFileSync(path.join(dir, "ref2.png"), gradientPng(40, 24));
    // white on the left half: change there, keep the rest
    writeFileSync(
      path.join(dir, "mask.png"),
      encodePng(64, 48, (x) => (x < 32 ? [255, 255, 255] : [0, 0, 0])),
    );
    const r = await kontext([
      "edit",
      "-i",
      "in.png",
      "-p",
      "paint the left half with the pattern of the other images",
      "-o",
      "masked.png",
      "--steps",
      "4",
      "--reference",
      "ref.png",
      "--reference",
      "ref2.png",
      "--mask",
      "mask.png",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^saved masked\.png /m);
    const id = /^queued ([0-9a-f-]{36})/m.exec(r.stderr)?.[1] as string;
    const res = await fetch(`${inject("serverUrl")}/api/history?limit=20`, {
      headers: { authorization: `Bearer ${inject("apiKey")}` },
    });
    const item = ((await res.json()) as { generations: Array<Record<string, unknown>> }).generations.find(
      (g) => g.generation_id === id,
    ) as { references: Array<{ field: string; width: number }>; mask: { field: string; width: number } };
    expect(item.references.map((x) => [x.field, x.width])).toEqual([
      ["input_image_2", 32],
      ["input_image_3", 40],
    ]);
    expect(item.mask).toMatchObject({ field: "mask_image", width: 64 });
  });

  it("at most 3 --reference images, and an unreadable --mask, are usage mistakes (exit 2)", async () => {
    const base = ["edit", "-i", "in.png", "-p", "p", "-o", "bad.webp"];
    const four = await kontext([...base, ...["a", "b", "c", "d"].flatMap(() => ["--reference", "in.png"])]);
    expect([four.code, four.stderr.trim()]).toEqual([
      2,
      "kontext: at most 3 --reference images (input_image_2..4), got 4",
    ]);
    const mask = await kontext([...base, "--mask", "nope.png"]);
    expect([mask.code, mask.stderr.trim()]).toEqual([2, "kontext: cannot read the mask nope.png: ENOENT"]);
    expect(existsSync(path.join(dir, "bad.webp"))).toBe(false);
  });

  it("usage mistakes exit 2: a missing input file, an output name without a format, a missing option", async () => {
    const missing = await kontext(["edit", "-i", "nope.png", "-p", "p", "-o", "o.webp"]);
    expect([missing.code, missing.stderr.trim()]).toEqual([
      2,
      "kontext: cannot read the input image nope.png: ENOENT",
    ]);
    const noFormat = await kontext(["edit", "-i", "in.png", "-p", "p", "-o", "out.bin"]);
    expect(noFormat.code).toBe(2);
    expect(noFormat.stderr).toContain("cannot tell the output format from out.bin");
    const noPrompt = await kontext(["edit", "-i", "in.png", "-o", "o.webp"]);
    expect(noPrompt.code).not.toBe(0);
    expect(noPrompt.stderr).toContain("required option '-p, --prompt <text>' not specified");
  });

  it("KONTEXT_API_KEY is sent as the bearer key: without it the server's 401 message, exit 1", async () => {
    const r = await kontext(["models"], { KONTEXT_API_KEY: "" });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^kontext: .*send Authorization: Bearer <key>.*\(HTTP 401, unauthorized\)$/m);
    const flag = await kontext(["--api-key", inject("apiKey"), "models"], { KONTEXT_API_KEY: "" });
    expect(flag.code, flag.stderr).toBe(0);
  });

  it("says when the server cannot be reached", async () => {
    const port = await freePort(); // a port nobody listens on
    const r = await kontext(["models"], { KONTEXT_URL: `http://127.0.0.1:${port}` });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`kontext: cannot reach http://127.0.0.1:${port} (ECONNREFUSED)`);
  });
});

describe("kontext generate", () => {
  it("makes an image from the prompt alone at the aspect ratio's size, with a progress bar", async () => {
    const r = await kontext([
      "generate",
      "a lighthouse at dusk",
      "-o",
      "gen.png",
      "-a",
      "16:9",
      "-s",
      "4",
      "--seed",
      "3",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^started: 1392x752, seed 3$/m);
    expect(r.stderr).toMatch(/\[█+\] 100% step 4\/4/);
    expect(r.stderr).toMatch(/^saved gen\.png \(1392x752, seed 3/m);
    const png = readFileSync(path.join(dir, "gen.png"));
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([1392, 752]); // IHDR width, height
  });

  it("refuses what text-to-image does not take, with the server's message, and writes nothing", async () => {
    const m = await kontext(["generate", "p", "-o", "bad.webp", "-a", "match_input_image"]);
    expect(m.code).toBe(1);
    expect(m.stderr).toContain("aspect_ratio: must be one of 1:1, 16:9");
    const s = await kontext(["generate", "p", "-o", "bad.webp", "--set", "strength=0.5"]);
    expect(s.stderr).toContain("strength: unknown field");
    expect(existsSync(path.join(dir, "bad.webp"))).toBe(false);
    const noPrompt = await kontext(["generate", "-o", "o.webp"]);
    expect(noPrompt.code).not.toBe(0);
    expect(noPrompt.stderr).toContain("missing required argument 'prompt'");
  });

  it("the client's generate() and submit() without input_image run text-to-image", async () => {
    const { Kontext } = await import("../src/index.js");
    const client = new Kontext({ baseUrl: inject("serverUrl"), apiKey: inject("apiKey") });
    const res = await client.generate({ prompt: "a fox", num_inference_steps: 4, seed: 8 });
    expect([res.width, res.height, res.seed]).toEqual([1024, 1024, 8]); // 1:1 by default
    const [id] = (await client.submit({ prompt: "a fox", aspect_ratio: "9:16", num_inference_steps: 4 })) as [
      string,
    ];
    const done = await client.wait(id);
    expect([done.status, done.width, done.height]).toEqual(["succeeded", 752, 1392]);
  });
});

describe("kontext jobs, models, worker, bench", () => {
  it("jobs ls / get / cancel", async () => {
    const { Kontext } = await import("../src/index.js");
    const client = new Kontext({ baseUrl: inject("serverUrl"), apiKey: inject("apiKey") });
    const [id] = (await client.submit({
      input_image: gradientPng(32, 32).toString("base64"),
      prompt: "a long one",
      num_inference_steps: 50,
    })) as [string];
    const ls = await kontext(["jobs", "ls"]);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/^ID\s+STATUS\s+PROGRESS\s+ENQUEUED\s+PROMPT/);
    expect(ls.stdout).toContain(id);
    const cancel = await kontext(["jobs", "cancel", id]);
    expect([cancel.code, cancel.stdout.trim()]).toEqual([0, `cancelled ${id}`]);
    expect((await client.wait(id)).status).toBe("cancelled");
    const get = await kontext(["jobs", "get", id]);
    expect(JSON.parse(get.stdout)).toMatchObject({ generation_id: id, status: "cancelled" });
    const all = await kontext(["jobs", "ls", "--status", "cancelled", "--json"]);
    expect(
      JSON.parse(all.stdout).generations.map((g: { generation_id: string }) => g.generation_id),
    ).toContain(id);
    const again = await kontext(["jobs", "cancel", id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`generation ${id} is already cancelled and cannot be cancelled (HTTP 409`);
    const bad = await kontext(["jobs", "ls", "--status", "done"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("status: must be all or a comma-separated list of");
  });

  it("models", async () => {
    const r = await kontext(["models"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^ID\s+NAME\s+OWNED BY\nflux-kontext-dev\s+FLUX\.1 Kontext \[dev\]/);
  });

  it("worker says what it needs", async () => {
    const r = await kontext(["worker"], { KONTEXT_REDIS_URL: "", KONTEXT_CONFIG: "" });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      "kontext: a worker pulls jobs from Redis: pass --redis-url or set KONTEXT_REDIS_URL",
    );
  });

  it("bench prints its figures with the device, the model and the date", async () => {
    const r = await kontext(["bench", "-n", "2", "--warmup", "0", "--size", "64x48"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^Kontext API-path benchmark, \d{4}-\d\d-\d\dT/);
    expect(r.stdout).toContain("flux-kontext-dev (tiny demo model) on cpu (float32)");
    expect(r.stdout).toMatch(/^API overhead\s+[\d.]+\s+[\d.]+\s+[\d.]+/m);
    expect(r.stdout).toMatch(/throughput\s+[\d.]+ images\/min/);
  });
});

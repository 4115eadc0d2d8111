// The real server process (main.ts), as `npm start` runs it: README's curl examples work as
// written, README documents every setting, and kill -9 of the server loses no job.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { SETTINGS } from "../src/config.js";
import {
  freePort,
  poll,
  repoRoot,
  type ServerProcess,
  startServer,
  waitFor,
  waitHealthy,
} from "./helpers.js";

const readme = readFileSync(path.join(repoRoot, "README.md"), "utf8");

/** main.ts as `npm start` runs it, on the real engine with the tiny model. */
const startRealServer = (dataDir: string, port: number): ServerProcess =>
  startServer({
    dataDir,
    port,
    env: {
      KONTEXT_MODEL_DIR: inject("tinyModelDir"),
      KONTEXT_PYTHON: inject("python"),
      KONTEXT_DEVICES: "cpu",
    },
  });

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("README", () => {
  it("documents every setting, with its default", () => {
    for (const s of SETTINGS) {
      const row = readme.split("\n").find((l) => l.startsWith(`| \`${s.env}\` | \`${s.key}\` |`));
      expect(row, s.env).toBeTruthy();
      const shown =
        s.default === null || (Array.isArray(s.default) && s.default.length === 0)
          ? "unset"
          : `\`${s.default}\``;
      expect(row?.split(" | ")[2], s.env).toBe(shown);
    }
  });
});

describe("the server process (real engine, tiny model)", () => {
  let dataDir: string;
  let server: ServerProcess;
  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), "kontext-server-"));
    server = startRealServer(dataDir, await freePort());
    await waitHealthy(server, 120_000);
  });
  afterAll(async () => {
    if (server?.proc.exitCode === null) {
      server.proc.kill("SIGTERM");
      await new Promise((r) => server.proc.once("exit", r));
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("README's curl examples work as written (sync, async, text-to-image, SSE, OpenAI multipart)", async () => {
    const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)]
      .map((m) => m[1] as string)
      .filter((b) => b.includes("curl"));
    expect(blocks.length).toBe(5);
    const work = mkdtempSync(path.join(tmpdir(), "kontext-readme-"));
    await sharp({ create: { width: 64, height: 48, channels: 3, background: "#4488cc" } })
      .png()
      .toFile(path.join(work, "photo.png"));
    const port = new URL(server.url).port;
    const run = (script: string) =>
      new Promise<string>((resolve, reject) => {
        // Only the port differs from what README says (the test server runs on a free port).
        execFile(
          "bash",
          ["-euo", "pipefail", "-c", script.replaceAll("127.0.0.1:8080", `127.0.0.1:${port}`)],
          {
            cwd: work,
            timeout: 120_000,
            maxBuffer: 64 * 1024 * 1024,
          },
          (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
        );
      });
    try {
      const [sync, queued, generated, streamed] = [
        await run(blocks[0] as string),
        await run(blocks[1] as string),
        await run(blocks[2] as string),
        await run(blocks[3] as string),
      ];
      await run(blocks[4] as string); // POST /v1/images/edits, as OpenAI's curl example does it
      expect(readFileSync(path.join(work, "out.png")).subarray(1, 4).toString()).toBe("PNG");
      const out = JSON.parse(sync);
      expect(out.images[0].url).toMatch(/\/results\/.+\.webp$/);
      expect(out.seed).toBe(42);
      const polled = JSON.parse(queued);
      expect(polled.status).toBe("succeeded");
      expect(polled.result_url).toMatch(/\/results\//);
      expect(JSON.parse(generated)).toMatchObject({ seed: 7, width: 1392, height: 752 }); // 16:9's bucket
      expect(streamed).toContain("event: media_generation_queued");
      expect(streamed).toContain("event: media_generation_progress");
      expect(streamed).toContain("event: media_generation_completed");
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 300_000); // five jobs on a CPU that may be shared

  it("kill -9 with queued jobs, restart on the same data dir: every job completes", async () => {
    const image = `data:image/png;base64,${(
      await sharp({ create: { width: 32, height: 32, channels: 3, background: "#aa3300" } })
        .png()
        .toBuffer()
    ).toString("base64")}`;
    const res = await fetch(`${server.url}/api/ai/queue`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ input_image: image, prompt: "p", num_inference_steps: 8, num_generations: 3 }),
    });
    const ids = ((await res.json()) as { generations: Array<{ generation_id: string }> }).generations.map(
      (g) => g.generation_id,
    );
    expect(ids).toHaveLength(3);
    const enginePid = ((await waitHealthy(server, 120_000)).engines as Array<{ pid: number }>)[0]
      ?.pid as number;
    // Wait until the first is running, then kill the server without warning.
    await poll(
      async () =>
        (await (await fetch(`${server.url}/api/ai/queue/${ids[0]}`)).json()) as {
          status: string;
          step: number;
        },
      (g) => g.status === "processing" && g.step >= 1,
      "the first job to run a step",
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    server.proc.kill("SIGKILL");
    await new Promise((r) => server.proc.once("exit", r));
    // The engine notices its stdin closed and exits too: no orphan holding the GPU.
    await waitFor(() => !alive(enginePid), 30_000, "the orphaned engine to exit");

    server = startRealServer(dataDir, Number(new URL(server.url).port));
    await waitHealthy(server, 120_000);
    const done = async () => {
      const all = await Promise.all(
        ids.map(
          async (id) =>
            ((await (await fetch(`${server.url}/api/ai/queue/${id}`)).json()) as { status: string }).status,
        ),
      );
      return all;
    };
    const statuses = await poll(
      done,
      (st) => st.every((x) => x === "succeeded" || x === "failed"),
      "all three to end",
      {
        timeoutMs: 120_000,
        intervalMs: 250,
      },
    );
    expect(statuses).toEqual(["succeeded", "succeeded", "succeeded"]);
  });
});

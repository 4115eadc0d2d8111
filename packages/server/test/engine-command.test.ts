// How local engines are started: one GPU each (CUDA_VISIBLE_DEVICES), compilation on by default
// on CUDA, and the environment and prompt token counts an engine reports reach the API.
import path from "node:path";
import { describe, expect, it } from "vitest";
import { defaultConfig, loadConfig } from "../src/config.js";
import { engineCommand, engineDevice } from "../src/engine/command.js";
import type { ResultMessage } from "../src/engine/protocol.js";
import { Supervisor } from "../src/engine/supervisor.js";
import { here, makeHarness } from "./helpers.js";

const argAfter = (args: string[], flag: string) => args[args.indexOf(flag) + 1];

describe("engine processes", () => {
  it("give each engine only its own GPU, as its cuda:0", () => {
    expect(engineDevice("cuda:1", {})).toEqual({ device: "cuda:0", env: { CUDA_VISIBLE_DEVICES: "1" } });
    // N counts the GPUs this process sees: the second of 2,3 is GPU 3.
    expect(engineDevice("cuda:1", { CUDA_VISIBLE_DEVICES: "2, 3" }).env.CUDA_VISIBLE_DEVICES).toBe("3");
    expect(engineDevice("cuda:1", { CUDA_VISIBLE_DEVICES: "GPU-aa,GPU-bb" }).env.CUDA_VISIBLE_DEVICES).toBe(
      "GPU-bb",
    );
    // Not a numbered GPU, or one this process does not see: passed on as it is (the engine says why).
    for (const d of ["cpu", "cuda", null])
      expect(engineDevice(d, { A: "1" })).toEqual({ device: d, env: { A: "1" } });
    expect(engineDevice("cuda:2", { CUDA_VISIBLE_DEVICES: "0,1" }).device).toBe("cuda:2");
  });

  it("build the engine's command line and environment per device", () => {
    const config = defaultConfig({ devices: ["cuda:0", "cuda:1"], dataDir: "/data" });
    const commands = config.devices.map((d) =>
      engineCommand(config, "/py", "/models/k", "/repo/engine", d, {}),
    );
    expect(commands.map((c) => c.env?.CUDA_VISIBLE_DEVICES)).toEqual(["0", "1"]);
    for (const c of commands) {
      expect(argAfter(c.args, "--device")).toBe("cuda:0");
      expect(argAfter(c.args, "--compile")).toBe("auto"); // on with CUDA, off on the CPU: the engine decides
      expect(argAfter(c.args, "--compile-cache")).toBe("/data/compile-cache");
      expect(argAfter(c.args, "--warmup-buckets")).toBe("auto");
      expect(c.file).toBe("/py");
    }
    const off = engineCommand({ ...config, compile: false }, "/py", "/m", "/e", "cpu", {});
    expect(argAfter(off.args, "--compile")).toBe("off");
    expect(off.args).not.toContain("--compile-cache");
    expect(argAfter(off.args, "--device")).toBe("cpu");
    expect(off.env?.CUDA_VISIBLE_DEVICES).toBeUndefined();
    expect(
      argAfter(engineCommand({ ...config, compile: true }, "/py", "/m", "/e", null, {}).args, "--compile"),
    ).toBe("on");
  });

  it("read KONTEXT_COMPILE as auto, true or false", () => {
    expect(loadConfig({}).compile).toBe("auto");
    expect(loadConfig({ KONTEXT_COMPILE: "true" }).compile).toBe(true);
    expect(loadConfig({ KONTEXT_COMPILE: "off" }).compile).toBe(false);
    expect(loadConfig({ KONTEXT_COMPILE: "AUTO" }).compile).toBe("auto");
    expect(() => loadConfig({ KONTEXT_COMPILE: "sometimes" })).toThrow(/auto, true or false/);
  });

  it("start each engine seeing only its GPU, and report the configured device and the environment", async () => {
    const config = defaultConfig({ devices: ["cuda:0", "cuda:1"] });
    const sup = new Supervisor({
      devices: config.devices,
      // The real command line and environment, run by a double that reports what it was given.
      command: (device) => {
        const c = engineCommand(config, "python", "/m", here, device, { PATH: process.env.PATH });
        return {
          ...c,
          file: process.execPath,
          args: [path.join(here, "fixtures/device-engine.mjs"), ...c.args],
        };
      },
      readyTimeoutMs: 20_000,
      restartDelayMs: 100,
    });
    const both = new Promise<void>((resolve) => {
      sup.on("available", () => {
        if (sup.status().every((s) => s.state === "idle")) resolve();
      });
    });
    sup.start();
    await both;
    try {
      const seen = sup.status().map((s) => [s.device, s.environment?.visible_devices, s.environment?.torch]);
      expect(seen).toEqual([
        ["cuda:0", "0", "2.15.0+cu132"],
        ["cuda:1", "1", "2.15.0+cu132"], // the engine itself was told --device cuda:0
      ]);
    } finally {
      await sup.stop();
    }
  });
});

describe("/healthz", () => {
  it("shows each engine's environment and configured device to a caller who sees detail", async () => {
    const fixture = path.join(here, "fixtures/device-engine.mjs");
    const config = defaultConfig({ devices: ["cuda:1"] });
    const h = await makeHarness({
      config,
      command: (device) => {
        const c = engineCommand(config, "python", "/m", here, device, { PATH: process.env.PATH });
        return { ...c, file: process.execPath, args: [fixture, ...c.args] };
      },
    });
    try {
      const body = (await h.app.inject({ method: "GET", url: "/healthz" })).json();
      expect(body.engines[0]).toMatchObject({
        device: "cuda:1",
        environment: { torch: "2.15.0+cu132", cuda: "13.2", attention: "math", visible_devices: "1" },
      });
    } finally {
      await h.close();
    }
  });
});

describe("prompt token counts", () => {
  it("ride in the timings from the supervisor to storeResult and out into the API", async () => {
    const { storeResult, completedData } = await import("../src/jobs/run.js");
    const { promptTokensOf } = await import("../src/api/render.js");
    const tokens = { t5: 731, t5_max: 512, clip: 618, clip_max: 77, truncated: true };
    const m: ResultMessage = {
      v: 1,
      type: "result",
      job_id: "gen_01",
      images: [],
      timings_ms: { total: 5402.9 },
      cache: { prompt: false, condition: false },
      prompt_tokens: tokens,
    };
    // What the supervisor hands the queue (its withPromptTokens), as the queue passes it on:
    const carried = { ...m.timings_ms, prompt_tokens: m.prompt_tokens } as unknown as Record<string, number>;
    const { mkdtempSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { FileStore } = await import("../src/storage/files.js");
    const dir = mkdtempSync(path.join(tmpdir(), "kontext-tokens-"));
    const files = new FileStore(dir);
    const raw = path.join(dir, "0.rgb");
    writeFileSync(raw, Buffer.alloc(4 * 4 * 3, 128));
    const g = {
      id: "gen_01",
      enqueuedAt: 0,
      startedAt: 0,
      params: { output_format: "png", output_quality: 80 },
    } as never;
    const stored = await storeResult(files, g, { path: raw, width: 4, height: 4 }, carried);
    expect(stored.timings.prompt_tokens).toEqual(tokens);
    expect(stored.timings.engine).toEqual({ total: 5402.9 }); // numbers only
    const done = {
      id: "gen_01",
      status: "succeeded",
      model: "flux-kontext-dev",
      seed: 1,
      width: 4,
      height: 4,
    };
    expect(
      completedData({ ...done, timings: stored.timings } as never, "/results/x.png").prompt_tokens,
    ).toEqual(tokens);
    expect(promptTokensOf({ timings: stored.timings })).toEqual({ prompt_tokens: tokens });
    expect(promptTokensOf({ timings: { queue: 0, inference: 0, encode: 0 } })).toEqual({});
  });
});

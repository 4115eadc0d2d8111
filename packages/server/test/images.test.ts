// Input images: every accepted form, and bad images, refused addresses and oversized bodies
// answered 4xx in the error envelope with nothing queued and the server unaffected.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AddressPolicy } from "../src/images/address.js";
import { decodeInput } from "../src/images/codec.js";
import { type Harness, makeHarness, pngDataUri } from "./helpers.js";

let h: Harness;
let server: Server;
let base: string;
const routes = new Map<string, (res: import("node:http").ServerResponse) => void>();

const solid = (w: number, h: number, color: string) =>
  sharp({ create: { width: w, height: h, channels: 3, background: color } });

/** A PNG whose header claims width × height but whose data is a few bytes: a decompression bomb. */
function bombPng(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(td));
    return Buffer.concat([len, td, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.writeUInt8(8, 8); // bit depth
  ihdr.writeUInt8(2, 9); // RGB
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(Buffer.alloc(1024))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

beforeAll(async () => {
  h = await makeHarness({
    config: {
      fetchAllow: ["127.0.0.1"],
      maxInputPixels: 4_000_000,
      bodyLimitBytes: 2 * 1024 * 1024,
      fetchMaxBytes: 1024 * 1024,
    },
  });
  const png = await solid(40, 30, "#3366cc").png().toBuffer();
  routes.set("/img.png", (res) => res.writeHead(200, { "content-type": "image/png" }).end(png));
  routes.set("/redirect", (res) => res.writeHead(302, { location: "/img.png" }).end());
  routes.set("/redirect-metadata", (res) =>
    res.writeHead(302, { location: "http://169.254.169.254/latest" }).end(),
  );
  routes.set("/loop", (res) => res.writeHead(302, { location: "/loop" }).end());
  routes.set("/missing", (res) => res.writeHead(404).end());
  routes.set("/big", (res) => res.writeHead(200).end(Buffer.alloc(2 * 1024 * 1024)));
  routes.set("/slow", () => {}); // never answers
  server = createServer((req, res) => (routes.get(req.url ?? "") ?? ((r) => r.writeHead(404).end()))(res));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  server.close();
  await h.close();
});

const queued = () => h.store.count("queued") + h.store.count("processing") + h.store.count("succeeded");
const submit = (input_image: string, extra: Record<string, unknown> = {}) =>
  h.app.inject({
    method: "POST",
    url: "/api/ai/queue",
    payload: { input_image, prompt: "p", num_inference_steps: 4, ...extra },
  });

async function expectRefused(input: string, status: number, type: string, detail?: RegExp) {
  const before = queued();
  const res = await submit(input);
  expect(res.statusCode, res.body).toBe(status);
  const body = res.json();
  expect(body.status).toBe("error");
  expect(body.error.type).toBe(type);
  if (detail) expect(body.error.detail).toMatch(detail);
  expect(queued()).toBe(before);
  // the server is unaffected
  expect((await h.app.inject({ url: "/healthz" })).statusCode).toBe(200);
}

describe("accepted inputs", () => {
  it("takes a data URI, raw base64 and an http URL, storing each image once by content hash", async () => {
    const uri = await pngDataUri(40, 30, { r: 51, g: 102, b: 204 });
    const raw = uri.slice(uri.indexOf(",") + 1);
    for (const input of [uri, raw, `${base}/img.png`, `${base}/redirect`]) {
      const res = await submit(input);
      expect(res.statusCode, `${input.slice(0, 40)}: ${res.body}`).toBe(200);
    }
    const ids = h.store
      .list({ statuses: ["queued", "processing", "succeeded"], limit: 10 })
      .map((g) => g.input?.hash);
    expect(new Set(ids).size).toBe(1); // same bytes every time (the server sent the same PNG)
  });

  it("accepts jpeg, gif (first frame) and webp", async () => {
    for (const fmt of ["jpeg", "gif", "webp"] as const) {
      const buf = await solid(20, 20, "#00aa00").toFormat(fmt).toBuffer();
      const res = await submit(`data:image/${fmt};base64,${buf.toString("base64")}`);
      expect(res.statusCode, `${fmt}: ${res.body}`).toBe(200);
    }
  });
});

describe("decoding", () => {
  it("applies EXIF orientation", async () => {
    const rotated = await solid(40, 20, "#ff0000").jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const img = await decodeInput(rotated, 1e6);
    expect([img.width, img.height]).toEqual([20, 40]);
  });

  it("flattens alpha onto white", async () => {
    const transparent = await sharp({
      create: { width: 4, height: 4, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
    })
      .png()
      .toBuffer();
    const img = await decodeInput(transparent, 1e6);
    expect(img.rgb.length).toBe(4 * 4 * 3);
    expect([...img.rgb.subarray(0, 3)]).toEqual([255, 255, 255]);
  });

  it("takes the first frame of an animated gif", async () => {
    const stacked = await sharp(
      await sharp({ create: { width: 8, height: 16, channels: 3, background: "#ff0000" } })
        .composite([{ input: await solid(8, 8, "#00ff00").png().toBuffer(), top: 8, left: 0 }])
        .raw()
        .toBuffer(),
      { raw: { width: 8, height: 16, channels: 3, pageHeight: 8 } as never },
    )
      .gif()
      .toBuffer();
    const img = await decodeInput(stacked, 1e6);
    expect([img.width, img.height]).toEqual([8, 8]);
    expect(img.rgb[0]).toBeGreaterThan(200); // red: the first frame
    expect(img.rgb[1]).toBeLessThan(50);
  });
});

describe("bad images", () => {
  it("corrupt bytes → 422", async () => {
    await expectRefused(
      Buffer.from("this is not an image at all").toString("base64"),
      422,
      "input_image_undecodable",
    );
  });

  it("truncated jpeg and png → 422", async () => {
    for (const fmt of ["jpeg", "png"] as const) {
      const buf = await sharp({
        create: {
          width: 300,
          height: 200,
          channels: 3,
          background: "#808080",
          noise: { type: "gaussian", mean: 128, sigma: 30 },
        },
      })
        .toFormat(fmt)
        .toBuffer();
      await expectRefused(
        buf.subarray(0, Math.floor(buf.length / 2)).toString("base64"),
        422,
        "input_image_undecodable",
        /corrupt/,
      );
    }
  });

  it("unsupported formats (tiff, svg, avif) → 422", async () => {
    const tiff = await solid(10, 10, "#123456").tiff().toBuffer();
    await expectRefused(tiff.toString("base64"), 422, "input_image_undecodable", /unsupported format tiff/);
    const svg = Buffer.from(
      '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>',
    );
    await expectRefused(svg.toString("base64"), 422, "input_image_undecodable", /unsupported format svg/);
  });

  it("more pixels than KONTEXT_MAX_INPUT_PIXELS → 413", async () => {
    const big = await solid(2500, 2000, "#777777").png().toBuffer();
    await expectRefused(big.toString("base64"), 413, "input_image_too_large", /5000000 pixels/);
  });

  it("a decompression bomb (tiny file, 50000×50000 header) → 413 without decoding", async () => {
    const bomb = bombPng(50_000, 50_000);
    expect(bomb.length).toBeLessThan(2000);
    await expectRefused(bomb.toString("base64"), 413, "input_image_too_large");
  });

  it("neither URL, data URI nor base64 → 400", async () => {
    await expectRefused("not an image!", 400, "input_image_invalid");
    await expectRefused("ftp://example.com/a.png", 400, "input_image_invalid");
    await expectRefused("data:image/png,rawtext", 400, "input_image_invalid");
  });
});

describe("URLs", () => {
  it("refuses private, loopback, link-local and metadata addresses, checked after DNS", async () => {
    const strict = await makeHarness(); // no allow-list
    try {
      for (const url of [
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/a.png",
        "http://192.168.0.1/a.png",
        "http://[::1]/a.png",
        "http://[::ffff:10.0.0.1]/a.png",
        "http://localhost/a.png", // a name: refused for what it resolves to
        `${base}/img.png`,
      ]) {
        const res = await strict.app.inject({
          method: "POST",
          url: "/api/ai/queue",
          payload: { input_image: url, prompt: "p" },
        });
        expect(res.statusCode, url).toBe(400);
        expect(res.json().error.type, url).toBe("input_image_refused");
      }
      expect(strict.store.count("queued")).toBe(0);
    } finally {
      await strict.close();
    }
  });

  it("checks every redirect", async () => {
    await expectRefused(`${base}/redirect-metadata`, 400, "input_image_refused", /169\.254\.169\.254/);
  });

  it("caps redirects, size, and time; reports HTTP errors", async () => {
    await expectRefused(`${base}/loop`, 422, "input_image_fetch_failed", /redirects/);
    await expectRefused(`${base}/missing`, 422, "input_image_fetch_failed", /HTTP 404/);
    await expectRefused(`${base}/big`, 413, "input_image_too_large");
  });

  it("times out", async () => {
    const quick = await makeHarness({ config: { fetchAllow: ["127.0.0.1"], fetchTimeoutMs: 300 } });
    try {
      const res = await quick.app.inject({
        method: "POST",
        url: "/api/ai/queue",
        payload: { input_image: `${base}/slow`, prompt: "p" },
      });
      expect(res.statusCode).toBe(422);
      expect(res.json().error.detail).toMatch(/timed out/);
    } finally {
      await quick.close();
    }
  });

  it("the policy refuses without the allow-list and allows CIDRs", () => {
    const strict = new AddressPolicy([]);
    expect(strict.refusedRange("127.0.0.1")).toBe("loopback");
    expect(strict.refusedRange("169.254.169.254")).toMatch(/metadata/);
    expect(strict.refusedRange("fd00::1")).toMatch(/private/);
    expect(strict.refusedRange("8.8.8.8")).toBeNull();
    expect(strict.refusedRange("::ffff:a00:1")).toBe("private");
    expect(strict.refusedRange("::ffff:127.0.0.1")).toBe("loopback");
    expect(strict.refusedRange("::ffff:808:808")).toBeNull();
    expect(new AddressPolicy(["10.0.0.0/8"]).refusedRange("10.9.9.9")).toBeNull();
  });
});

describe("bodies", () => {
  it("an oversized body → 413 in the envelope, nothing queued", async () => {
    const before = queued();
    const res = await submit(Buffer.alloc(3 * 1024 * 1024).toString("base64"));
    expect(res.statusCode).toBe(413);
    expect(res.json().error.type).toBe("body_too_large");
    expect(queued()).toBe(before);
  });
});

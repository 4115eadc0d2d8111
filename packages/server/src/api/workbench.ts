// The workbench's built files (packages/workbench/dist, built by `npm start`) served at `/`.
// Assets carry a content hash in their names, so they are cached for good; index.html never is.
import { readFile } from "node:fs/promises";
import path from "node:path";
import type { FastifyInstance, FastifyReply } from "fastify";
import { ApiError } from "../errors.js";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".woff2": "font/woff2",
  ".json": "application/json",
  ".map": "application/json",
};
const ASSET_NAME = /^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,200}$/;

export function registerWorkbench(app: FastifyInstance, dir: string): void {
  // Whether the file was sent. Not the reply itself: a reply is thenable, so awaiting it would
  // wait for the response to finish and give undefined (which read as "not found" after sending).
  const send = async (reply: FastifyReply, file: string, cache: string): Promise<boolean> => {
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch {
      return false;
    }
    void reply
      .header("content-type", CONTENT_TYPES[path.extname(file)] ?? "application/octet-stream")
      .header("cache-control", cache)
      .send(bytes);
    return true;
  };

  app.get("/", async (_req, reply) => {
    if (!(await send(reply, path.join(dir, "index.html"), "no-cache")))
      throw new ApiError("workbench_not_built", { dir });
    return reply;
  });

  app.get<{ Params: { name: string } }>("/assets/:name", async (req, reply) => {
    const name = req.params.name;
    const sent =
      ASSET_NAME.test(name) &&
      (await send(reply, path.join(dir, "assets", name), "public, max-age=31536000, immutable"));
    if (!sent) throw new ApiError("route_not_found", { method: "GET", url: `/assets/${name}` });
    return reply;
  });
}

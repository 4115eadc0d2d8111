// A local S3-compatible server for the object-store tests: moto's standalone server (from PyPI, in
// its own cached venv: scripts/s3-env.sh) on a free loopback port. It keeps objects in memory and
// accepts any credentials; the tests give the AWS SDK dummy ones.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import path from "node:path";
import { DeleteObjectCommand, GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { freePort, waitFor } from "./support.js";

const repoRoot = path.resolve(import.meta.dirname, "../../..");

/** The environment every S3 client in the tests (and the server processes they start) uses. */
export const S3_CREDENTIALS = { AWS_ACCESS_KEY_ID: "kontext-test", AWS_SECRET_ACCESS_KEY: "kontext-test" };

export interface S3Server {
  endpoint: string;
  /** Creates a bucket (PUT /name). */
  createBucket(name: string): Promise<void>;
  /** An object's bytes as the store holds them, or null (read with the AWS SDK, not the code under test). */
  object(bucket: string, key: string): Promise<Buffer | null>;
  /** Deletes an object behind the server's back, as a bucket's lifecycle rule would. */
  expire(bucket: string, key: string): Promise<void>;
  stop(): Promise<void>;
}

/** The venv holding moto's server, installed on first use (test/global-setup.ts calls it once). */
export function s3Venv(): string {
  return execFileSync("bash", [path.join(repoRoot, "scripts/s3-env.sh")], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
}

export async function startS3(): Promise<S3Server> {
  const venv = s3Venv();
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const proc: ChildProcess = spawn(
    path.join(venv, "bin", "moto_server"),
    ["-H", "127.0.0.1", "-p", String(port)],
    {
      stdio: "ignore",
    },
  );
  await waitFor(
    () =>
      fetch(endpoint).then(
        (r) => r.ok,
        () => false,
      ),
    30_000,
    `moto_server to answer on ${endpoint}`,
    {
      intervalMs: 200,
      giveUpIf: () => (proc.exitCode !== null ? `moto_server exited with ${proc.exitCode}` : null),
    },
  );
  return {
    endpoint,
    async createBucket(name) {
      const res = await fetch(`${endpoint}/${name}`, { method: "PUT" });
      if (!res.ok) throw new Error(`create bucket ${name}: HTTP ${res.status}`);
    },
    async object(bucket, key) {
      const client = sdkClient(endpoint);
      try {
        const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        return Buffer.from((await res.Body?.transformToByteArray()) ?? []);
      } catch (err) {
        if ((err as { name?: string }).name === "NoSuchKey") return null;
        throw err;
      } finally {
        client.destroy();
      }
    },
    async expire(bucket, key) {
      const client = sdkClient(endpoint);
      try {
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      } finally {
        client.destroy();
      }
    },
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    },
  };
}

/** An S3 client of the test's own (not the code under test). */
function sdkClient(endpoint: string): S3Client {
  return new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "kontext-test", secretAccessKey: "kontext-test" },
  });
}

// An S3-compatible object store (AWS S3, MinIO, Ceph RGW, Cloudflare R2, …) holding input and
// result files when gateways and workers share no filesystem path. The one module that talks to
// the AWS SDK. Credentials come from the SDK's usual chain (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, a profile, an instance role).
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { ApiError } from "../errors.js";

export interface ObjectStoreOptions {
  bucket: string;
  /** Unset: AWS S3 itself. Set (e.g. http://10.0.0.9:9000): another S3-compatible service. */
  endpoint: string | null;
  region: string;
  /** Prepended to every key (e.g. `kontext/`), so one bucket can serve several deployments. */
  prefix: string;
}

export class ObjectStoreError extends Error {}

export class ObjectStore {
  private readonly client: S3Client;
  constructor(private readonly options: ObjectStoreOptions) {
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint
        ? { endpoint: options.endpoint, forcePathStyle: true } // MinIO and most self-hosted stores have no per-bucket DNS
        : {}),
      maxAttempts: 4, // the SDK's retries with backoff: a store restarting loses nothing
    });
  }

  /** Where the files live, for logs and error messages. */
  describe(): string {
    const where = this.options.endpoint ? ` at ${this.options.endpoint}` : "";
    return `s3://${this.options.bucket}/${this.options.prefix}${where}`;
  }

  /** Checks at start that the bucket exists and these credentials reach it. */
  async check(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.options.bucket }));
    } catch (err) {
      const status = (err as S3ServiceException).$metadata?.httpStatusCode;
      const why =
        status === 404
          ? "the bucket does not exist"
          : status === 403
            ? "access denied (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            : (err as Error).message || (err as Error).name;
      throw new ObjectStoreError(`object store ${this.describe()}: ${why}`);
    }
  }

  private key(name: string): string {
    return this.options.prefix + name;
  }

  /** Writes an object; S3 makes it visible whole or not at all. */
  async put(name: string, data: Buffer): Promise<void> {
    await this.call(() =>
      this.client.send(
        new PutObjectCommand({ Bucket: this.options.bucket, Key: this.key(name), Body: data }),
      ),
    );
  }

  /** An object's bytes, or null when there is none under that name. */
  async get(name: string): Promise<Buffer | null> {
    return this.call(async () => {
      const res = await orMissing(
        this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: this.key(name) })),
      );
      return res?.Body ? Buffer.from(await res.Body.transformToByteArray()) : null;
    });
  }

  /** Whether an object is there (a HEAD request: no bytes move). */
  async exists(name: string): Promise<boolean> {
    return this.call(
      async () =>
        (await orMissing(
          this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key: this.key(name) })),
        )) !== null,
    );
  }

  /** Deletes an object; deleting one that is not there is not an error. */
  async remove(name: string): Promise<void> {
    await this.call(() =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key: this.key(name) })),
    );
  }

  /** Runs one request; a store that cannot be reached (after the SDK's retries) is a 503. */
  private async call<T>(request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (err) {
      const e = err as Error;
      throw new ApiError("storage_unavailable", { where: this.describe(), reason: e.message || e.name });
    }
  }

  close(): void {
    this.client.destroy();
  }
}

/** A request's answer, or null when the object is not there (404). */
async function orMissing<T>(request: Promise<T>): Promise<T | null> {
  try {
    return await request;
  } catch (err) {
    if (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404) return null;
    throw err;
  }
}

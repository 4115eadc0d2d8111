// Standard Webhooks signatures (https://www.standardwebhooks.com): the receiver checks
// `webhook-signature: v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">`.
import { createHmac, timingSafeEqual } from "node:crypto";

/** The HMAC key of a secret: `whsec_<base64>` as Standard Webhooks libraries expect, else its UTF-8 bytes. */
export function secretKey(secret: string): Buffer {
  return secret.startsWith("whsec_")
    ? Buffer.from(secret.slice("whsec_".length), "base64")
    : Buffer.from(secret, "utf8");
}

export function sign(key: Buffer, id: string, timestamp: number, body: string): string {
  return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}

/** Whether any of the space-separated signatures in `header` is right (what a receiver does). */
export function verify(key: Buffer, id: string, timestamp: number, body: string, header: string): boolean {
  const want = Buffer.from(sign(key, id, timestamp, body));
  return header.split(" ").some((s) => {
    const got = Buffer.from(s);
    return got.length === want.length && timingSafeEqual(got, want);
  });
}

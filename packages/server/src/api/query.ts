// The query parameters the list endpoints share (GET /api/ai/queue and GET /api/history): each
// declared once in TypeBox (validation and the OpenAPI parameters) and read once.
import { type Static, type TObject, type TOptional, type TString, Type } from "@sinclair/typebox";
import { fieldInvalid } from "../errors.js";
import { STATUSES, type Status } from "../jobs/types.js";
import { validateBody } from "../schema/validate.js";

export const LIMIT = { min: 1, max: 1000 } as const;

/** `limit`: at most this many, newest first; `fallback` when absent. */
export const limitParam = (fallback: number): TOptional<TString> =>
  Type.Optional(
    Type.String({
      description: `At most this many, newest first (${LIMIT.min}–${LIMIT.max}, default ${fallback}).`,
      pattern: "^[0-9]+$",
    }),
  );

/** `status`: comma-separated statuses or `all`; `defaults` says what its absence means. */
export const statusParam = (defaults: string): TOptional<TString> =>
  Type.Optional(
    Type.String({
      description: `Comma-separated statuses (${STATUSES.join(", ")}) or \`all\`${defaults}`,
      minLength: 1,
    }),
  );

/**
 * A `status` query (comma-separated statuses, or `all`) as a list; `fallback` when it is absent.
 * 400 naming `status` for anything else.
 */
export function parseStatuses(raw: string | undefined, fallback: readonly Status[]): readonly Status[] {
  if (raw === undefined) return fallback;
  if (raw === "all") return STATUSES;
  const asked = raw.split(",").map((s) => s.trim());
  if (asked.some((s) => !(STATUSES as readonly string[]).includes(s))) {
    throw fieldInvalid(
      "status",
      `must be all or a comma-separated list of ${STATUSES.join(", ")}`,
      JSON.stringify(raw),
    );
  }
  return asked as Status[];
}

type ListQueryOf<S extends TObject> = Omit<Static<S>, "limit" | "status"> & {
  limit: number;
  statuses: readonly Status[];
};

/**
 * A list endpoint's query, checked against its schema (400 naming an unknown or malformed
 * parameter), with `limit` and `status` read, their defaults applied.
 */
export function readListQuery<S extends TObject>(
  schema: S,
  query: unknown,
  defaults: { limit: number; statuses: readonly Status[] },
): ListQueryOf<S> {
  const q = validateBody<Static<S> & { limit?: string; status?: string }>(schema, query ?? {});
  const { limit: rawLimit, status, ...rest } = q;
  const limit = rawLimit === undefined ? defaults.limit : Number(rawLimit);
  if (!(limit >= LIMIT.min && limit <= LIMIT.max)) {
    throw fieldInvalid(
      "limit",
      `must be an integer from ${LIMIT.min} to ${LIMIT.max}`,
      JSON.stringify(rawLimit),
    );
  }
  return { ...rest, limit, statuses: parseStatuses(status, defaults.statuses) } as ListQueryOf<S>;
}

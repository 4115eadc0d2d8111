// Generations and their events in Redis, for the BullMQ backend: what every gateway and worker
// reads and writes. Each change of a generation and the event that announces it are one Lua
// script (atomic), and the event is published to every process in the same step.
//
//   kontext:gen:<id>          hash: the Generation's fields, each JSON-encoded (plus seq)
//   kontext:gens              sorted set id by seq (history, listing)
//   kontext:status:<status>   sorted set id by seq, one per status (queue position, depth)
//   kontext:events:<id>       list of the generation's events (StoredEvent JSON), in id order
//   kontext:completed         sorted set of media_generation_completed events by id (/api/events)
//   kontext:event-seq, kontext:seq   counters: event ids (SSE ids) and generation seqs
//   kontext:preview:<id>      the latest preview (JPEG), while it runs
//   kontext:idem:<sha256>     an Idempotency-Key's request hash and generation ids (24 h)
//   kontext:result-hash:<owner>:<sha256>  the owner's generation whose result has these bytes (edit chains)
//   kontext:inputs            set of the input hashes stored generations refer to (input, references
//                             and mask alike; added with the
//                             generation, removed when the last one referring to it is deleted);
//                             kontext:inputs:indexed once it holds those of older generations too
//   kontext:input-refs:<sha256>  set of the generation ids referring to that input (deleting a
//                             generation: is it the input's last user?); kontext:input-refs:indexed
//                             once older generations are in them too
//   kontext:workers           hash: each worker's engines, refreshed every few seconds
//   kontext:webhooks:due      sorted set `<id>:<event id>` by due time: webhook deliveries to send
//   kontext:webhook:<id>:<event id>  hash: a delivery's body, attempts and outcome
//   kontext:webhooks:of:<id>  list of a generation's deliveries
//   channels kontext:events (every event), kontext:cancel (generation ids to stop)
// Job data in BullMQ carries the generation id only; images live in the shared file store.
import { createHash } from "node:crypto";
import type { EngineStatus } from "../engine/supervisor.js";
import type { Redis } from "../redis/connection.js";
import type { HistoryFilter, InsertMeta, ListFilter } from "./job-queue.js";
import type { NewGeneration } from "./sqlite-records.js";
import {
  type EventName,
  FINAL,
  type Generation,
  type Patch,
  STATUSES,
  type Status,
  type StoredEvent,
} from "./types.js";

const P = "kontext:";
export const EVENTS_CHANNEL = `${P}events`;
export const CANCEL_CHANNEL = `${P}cancel`;
/** Completed events kept for /api/events replay. */
const COMPLETED_KEPT = 10_000;
const PREVIEW_TTL_MS = 3_600_000;
export const WEBHOOKS_DUE = `${P}webhooks:due`;
export const webhookKey = (item: string) => `${P}webhook:${item}`;
export const webhooksOfKey = (id: string) => `${P}webhooks:of:${id}`;

// The stored images a generation's hash fields refer to (input, references, mask: their JSON), and
// their release from kontext:inputs and kontext:input-refs:* when the generation no longer holds them.
const INPUT_HASHES = `
local function input_hashes(input, references, mask)
  local out = {}
  local function add(v) if type(v) == 'table' and type(v.hash) == 'string' then table.insert(out, v.hash) end end
  if input then add(cjson.decode(input)) end
  local refs = references and cjson.decode(references)
  if type(refs) == 'table' then for _, r in ipairs(refs) do add(r) end end
  if mask then add(cjson.decode(mask)) end
  return out
end
local function release_inputs(p, id, hashes)
  for _, h in ipairs(hashes) do
    local refs = p .. 'input-refs:' .. h
    redis.call('SREM', refs, id)
    if redis.call('SCARD', refs) == 0 then redis.call('SREM', p .. 'inputs', h) end
  end
end
`;

// ARGV: prefix, idemKey|'', idemValue, idemTtlMs, n, then per generation: id, model, npairs, k, v, ...
const INSERT = `${INPUT_HASHES}
local p = ARGV[1]
if ARGV[2] ~= '' then
  local prior = redis.call('GET', ARGV[2])
  if prior then return {'exists', prior} end
  redis.call('SET', ARGV[2], ARGV[3], 'PX', ARGV[4])
end
local out = {'ok'}
local i = 6
for g = 1, tonumber(ARGV[5]) do
  local id, model, n = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  local key = p .. 'gen:' .. id
  local seq = redis.call('INCR', p .. 'seq')
  redis.call('HSET', key, 'seq', seq)
  for j = 1, n do
    redis.call('HSET', key, ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  local stored = redis.call('HMGET', key, 'input', 'references', 'mask')
  for _, hash in ipairs(input_hashes(stored[1], stored[2], stored[3])) do
    redis.call('SADD', p .. 'inputs', hash)
    redis.call('SADD', p .. 'input-refs:' .. hash, id)
  end
  redis.call('ZADD', p .. 'gens', seq, id)
  redis.call('ZADD', p .. 'status:queued', seq, id)
  local pos = redis.call('ZRANK', p .. 'status:queued', id)
  local eid = redis.call('INCR', p .. 'event-seq')
  local ev = '{"id":' .. eid .. ',"generationId":"' .. id .. '","event":"media_generation_queued","data":{"generation_id":"' .. id .. '","status":"queued","model":' .. cjson.encode(model) .. ',"queue_position":' .. pos .. '}}'
  redis.call('RPUSH', p .. 'events:' .. id, ev)
  redis.call('PUBLISH', p .. 'events', ev)
  table.insert(out, ev)
end
return out
`;

// ARGV: prefix, id, expected statuses ('a,b' or ''), npairs, k, v, ..., event name|'', event data, kept
// Returns false when the generation is missing or not in an expected status; else the event or 0.
const APPLY = `
local p, id = ARGV[1], ARGV[2]
local key = p .. 'gen:' .. id
local raw = redis.call('HGET', key, 'status')
if not raw then return false end
local cur = cjson.decode(raw)
if ARGV[3] ~= '' then
  local ok = false
  for s in string.gmatch(ARGV[3], '[^,]+') do
    if s == cur then ok = true end
  end
  if not ok then return false end
end
local n = tonumber(ARGV[4])
local i = 5
local new = nil
local completed = nil
for j = 1, n do
  redis.call('HSET', key, ARGV[i], ARGV[i + 1])
  if ARGV[i] == 'status' then new = cjson.decode(ARGV[i + 1]) end
  if ARGV[i] == 'completedAt' then completed = tonumber(ARGV[i + 1]) end
  i = i + 2
end
if new and new ~= cur then
  local seq = redis.call('HGET', key, 'seq')
  redis.call('ZREM', p .. 'status:' .. cur, id)
  redis.call('ZADD', p .. 'status:' .. new, seq, id)
end
-- Finished generations still holding their files, by completion time (retention's order).
if completed and (new == 'succeeded' or new == 'failed' or new == 'cancelled') then
  redis.call('ZADD', p .. 'with-files', completed, id)
end
local name, data = ARGV[i], ARGV[i + 1]
if name == '' then return 0 end
local eid = redis.call('INCR', p .. 'event-seq')
local ev = '{"id":' .. eid .. ',"generationId":"' .. id .. '","event":"' .. name .. '","data":' .. data .. '}'
local list = p .. 'events:' .. id
if name == 'media_generation_completed' then
  -- Previews are the bulk of the events: a finished generation keeps its progress events without them.
  local all = redis.call('LRANGE', list, 0, -1)
  redis.call('DEL', list)
  for _, e in ipairs(all) do
    local slim = string.gsub(e, ',"preview":"[^"]*"', '')
    redis.call('RPUSH', list, slim)
  end
  redis.call('ZADD', p .. 'completed', eid, ev)
  redis.call('ZREMRANGEBYRANK', p .. 'completed', 0, -(tonumber(ARGV[i + 2]) + 1))
  redis.call('DEL', p .. 'preview:' .. id)
end
redis.call('RPUSH', list, ev)
redis.call('PUBLISH', p .. 'events', ev)
-- A webhook delivery for this event, when the generation asked for one (webhooks/outbox.ts).
local kinds = {media_generation_started = 'start', media_generation_progress = 'progress', media_generation_completed = 'completed'}
local kind = kinds[name]
if kind then
  local rawp = redis.call('HGET', key, 'params')
  local params = rawp and cjson.decode(rawp)
  if params and type(params.webhook) == 'string' then
    local filter = params.webhook_events_filter
    if type(filter) ~= 'table' then filter = {'completed'} end
    for _, f in ipairs(filter) do
      if f == kind then
        local t = redis.call('TIME')
        local item = id .. ':' .. eid
        redis.call('ZADD', p .. 'webhooks:due', tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), item)
        redis.call('RPUSH', p .. 'webhooks:of:' .. id, item)
      end
    end
  end
end
return ev
`;

// ARGV: prefix, id. Deletes a final generation: its hash, events, preview, index entries, its
// completed event in kontext:completed, its result-hash link, and its input references (input,
// references, mask: each leaves kontext:inputs with its last user, so the file store's check then
// finds it unused).
// Returns false when it is missing, {'active', status} while queued or processing, else
// {'ok', the hash's fields and values...}.
const DELETE = `${INPUT_HASHES}
local p, id = ARGV[1], ARGV[2]
local key = p .. 'gen:' .. id
local h = redis.call('HGETALL', key)
if #h == 0 then return false end
local g = {}
for i = 1, #h, 2 do g[h[i]] = h[i + 1] end
local status = g.status and cjson.decode(g.status)
if status == 'queued' or status == 'processing' then return {'active', status} end
local list = p .. 'events:' .. id
for _, e in ipairs(redis.call('LRANGE', list, 0, -1)) do
  if string.find(e, '"event":"media_generation_completed"', 1, true) then
    redis.call('ZREM', p .. 'completed', e)
  end
end
redis.call('DEL', key, list, p .. 'preview:' .. id)
redis.call('ZREM', p .. 'gens', id)
redis.call('ZREM', p .. 'with-files', id)
if type(status) == 'string' then redis.call('ZREM', p .. 'status:' .. status, id) end
local rh = g.resultHash and cjson.decode(g.resultHash)
if type(rh) == 'string' then
  local owner = g.owner and cjson.decode(g.owner)
  if type(owner) ~= 'string' then owner = '' end
  local link = p .. 'result-hash:' .. owner .. ':' .. rh
  if redis.call('GET', link) == id then redis.call('DEL', link) end
end
release_inputs(p, id, input_hashes(g.input, g.references, g.mask))
return {'ok', unpack(h)}
`;

// ARGV: prefix, id, at. Marks a finished generation's files deleted (retention): expiredAt set,
// out of kontext:with-files, its progress events dropped (its final events stay as metadata), and
// its input references released. 1 when it was marked, 0 when it is gone or already expired.
const EXPIRE = `${INPUT_HASHES}
local p, id = ARGV[1], ARGV[2]
local key = p .. 'gen:' .. id
redis.call('ZREM', p .. 'with-files', id)
local raw = redis.call('HMGET', key, 'status', 'expiredAt', 'input', 'references', 'mask')
if not raw[1] or (raw[2] and raw[2] ~= 'null') then return 0 end
redis.call('HSET', key, 'expiredAt', ARGV[3])
local list = p .. 'events:' .. id
local kept = {}
for _, e in ipairs(redis.call('LRANGE', list, 0, -1)) do
  if not string.find(e, '"event":"media_generation_progress"', 1, true) then table.insert(kept, e) end
end
redis.call('DEL', list)
for _, e in ipairs(kept) do redis.call('RPUSH', list, e) end
release_inputs(p, id, input_hashes(raw[3], raw[4], raw[5]))
return 1
`;

// ARGV: prefix, id, starred (JSON). Sets the field only on a generation that exists; 1 when it did.
const STAR = `
local key = ARGV[1] .. 'gen:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
redis.call('HSET', key, 'starred', ARGV[3])
return 1
`;

function pairs(fields: Record<string, unknown>): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) out.push(k, JSON.stringify(v));
  return out;
}

function fromHash(h: Record<string, string>): Generation | null {
  if (!h.status) return null;
  // written before starring (not starred), the change mask, the LoRA report or the extra images (none) existed
  const g: Record<string, unknown> = {
    references: [],
    mask: null,
    starred: false,
    maskFile: null,
    changedFraction: null,
    wholeFrame: null,
    loraReport: null,
  };
  for (const [k, v] of Object.entries(h)) g[k] = JSON.parse(v);
  return g as unknown as Generation;
}

export interface WorkerBeat {
  name: string;
  at: number;
  engines: EngineStatus[];
}

export class RedisRecords {
  private inputsIndexed = false;
  private inputRefsIndexed = false;
  private withFilesIndexed = false;
  constructor(readonly redis: Redis) {}

  /** The hashes among `hashes` that a stored generation refers to (orphan collection). */
  async inputsInUse(hashes: readonly string[]): Promise<Set<string>> {
    await this.indexInputs();
    if (hashes.length === 0) return new Set();
    const member = await this.redis.smismember(`${P}inputs`, ...hashes);
    return new Set(hashes.filter((_, i) => member[i] === 1));
  }

  /** Once per Redis: adds the inputs of generations written before kontext:inputs existed. */
  private async indexInputs(): Promise<void> {
    if (this.inputsIndexed) return;
    if (!(await this.redis.exists(`${P}inputs:indexed`))) {
      for (let start = 0; ; start += 1000) {
        const ids = await this.redis.zrange(`${P}gens`, start, start + 999);
        if (ids.length === 0) break;
        const pipe = this.redis.pipeline();
        for (const id of ids) pipe.hget(`${P}gen:${id}`, "input");
        const hashes = ((await pipe.exec()) ?? [])
          .map(([, v]) =>
            typeof v === "string" ? (JSON.parse(v) as { hash?: string } | null)?.hash : undefined,
          )
          .filter((h): h is string => typeof h === "string");
        if (hashes.length > 0) await this.redis.sadd(`${P}inputs`, ...hashes);
      }
      await this.redis.set(`${P}inputs:indexed`, "1");
    }
    this.inputsIndexed = true;
  }

  /** Once per Redis: adds the generations written before kontext:input-refs:* existed to them. */
  private async indexInputRefs(): Promise<void> {
    if (this.inputRefsIndexed) return;
    if (!(await this.redis.exists(`${P}input-refs:indexed`))) {
      for (let start = 0; ; start += 1000) {
        const ids = await this.redis.zrange(`${P}gens`, start, start + 999);
        if (ids.length === 0) break;
        const read = this.redis.pipeline();
        for (const id of ids) read.hget(`${P}gen:${id}`, "input");
        const inputs = (await read.exec()) ?? [];
        const write = this.redis.pipeline();
        ids.forEach((id, i) => {
          const v = inputs[i]?.[1];
          const hash = typeof v === "string" ? (JSON.parse(v) as { hash?: string } | null)?.hash : undefined;
          if (typeof hash === "string") write.sadd(`${P}input-refs:${hash}`, id);
        });
        await write.exec();
      }
      await this.redis.set(`${P}input-refs:indexed`, "1");
    }
    this.inputRefsIndexed = true;
  }

  /**
   * Deletes a final generation (see DELETE) and returns it as it was; `active` with its status
   * while queued or processing; null when there is none.
   */
  async remove(id: string): Promise<{ removed: Generation } | { active: Status } | null> {
    await this.indexInputRefs();
    const out = (await this.redis.eval(DELETE, 0, P, id)) as string[] | null;
    if (out === null) return null;
    if (out[0] === "active") return { active: out[1] as Status };
    const h: Record<string, string> = {};
    for (let i = 1; i + 1 < out.length; i += 2) h[out[i] as string] = out[i + 1] as string;
    return { removed: fromHash(h) as Generation };
  }

  /** Finished generations still holding files, finished before `before`, oldest first (retention). */
  async withFilesOldestFirst(before: number, limit: number): Promise<Generation[]> {
    await this.indexWithFiles();
    const ids = await this.redis.zrangebyscore(`${P}with-files`, "-inf", `(${before}`, "LIMIT", 0, limit);
    return this.getMany(ids);
  }

  /** Whether a generation other than `exceptId` still holds the input `hash` (not expired, not deleted). */
  async inputInUse(hash: string, exceptId: string): Promise<boolean> {
    await this.indexInputRefs();
    return (await this.redis.smembers(`${P}input-refs:${hash}`)).some((id) => id !== exceptId);
  }

  /** Marks a generation's files deleted (see EXPIRE); its final events stay. */
  async markExpired(id: string, at: number): Promise<void> {
    await this.indexInputRefs();
    await this.redis.eval(EXPIRE, 0, P, id, JSON.stringify(at));
  }

  /** Idempotency keys expire in Redis by themselves (PX at insert): nothing to forget here. */
  async forgetIdempotencyBefore(_before: number): Promise<number> {
    return 0;
  }

  /** Once per Redis: adds finished generations written before kontext:with-files existed. */
  private async indexWithFiles(): Promise<void> {
    if (this.withFilesIndexed) return;
    if (!(await this.redis.exists(`${P}with-files:indexed`))) {
      for (let start = 0; ; start += 1000) {
        const ids = await this.redis.zrange(`${P}gens`, start, start + 999);
        if (ids.length === 0) break;
        const write = this.redis.pipeline();
        for (const g of await this.getMany(ids))
          if (FINAL.includes(g.status) && g.expiredAt == null && g.completedAt !== null)
            write.zadd(`${P}with-files`, g.completedAt, g.id);
        await write.exec();
      }
      await this.redis.set(`${P}with-files:indexed`, "1");
    }
    this.withFilesIndexed = true;
  }

  /** Stars or unstars a generation; false when there is none. */
  async setStarred(id: string, starred: boolean): Promise<boolean> {
    return (await this.redis.eval(STAR, 0, P, id, JSON.stringify(starred))) === 1;
  }

  /** Inserts generations as queued, each with its queued event; all or none. */
  async insert(
    gens: NewGeneration[],
    now: number,
    meta: InsertMeta,
  ): Promise<{ inserted: StoredEvent[] } | { existing: { requestHash: string; ids: string[] } }> {
    const args: (string | number)[] = [P];
    if (meta.idempotency) {
      args.push(
        idemKey(meta.owner ?? null, meta.idempotency.key),
        JSON.stringify({ requestHash: meta.idempotency.requestHash, ids: gens.map((g) => g.id) }),
        24 * 3_600_000,
      );
    } else args.push("", "", 0);
    args.push(gens.length);
    for (const g of gens) {
      const fields = pairs({
        id: g.id,
        model: g.model,
        status: "queued",
        params: g.params,
        input: g.input,
        references: g.references ?? [],
        mask: g.mask ?? null,
        seed: g.seed,
        attempts: 0,
        enqueuedAt: now,
        startedAt: null,
        completedAt: null,
        width: null,
        height: null,
        step: 0,
        totalSteps: null,
        resultFile: null,
        errorCode: null,
        errorMessage: null,
        timings: null,
        cancelRequested: false,
        owner: meta.owner ?? null,
        baseUrl: meta.baseUrl ?? null,
        expiredAt: null,
        starred: false,
        maskFile: null,
        changedFraction: null,
        wholeFrame: null,
        resultHash: null,
        parentId: g.input ? await this.parentOf(meta.owner ?? null, g.input.hash) : null,
      });
      args.push(g.id, g.model, fields.length / 2, ...fields);
    }
    const out = (await this.redis.eval(INSERT, 0, ...args)) as string[];
    if (out[0] === "exists") return { existing: JSON.parse(out[1] as string) };
    return { inserted: out.slice(1).map((e) => JSON.parse(e) as StoredEvent) };
  }

  /** The owner's generation whose result has these bytes: chains never cross owners. */
  private async parentOf(owner: string | null, inputHash: string): Promise<string | null> {
    return this.redis.get(`${P}result-hash:${owner ?? ""}:${inputHash}`);
  }

  /**
   * Writes `fields` and appends `event` in one step, when the generation is in one of `expect`
   * (any status when empty). Returns whether it was written, and the event.
   */
  async apply(
    id: string,
    expect: readonly Status[],
    fields: Patch,
    event?: { name: EventName; data: Record<string, unknown> },
  ): Promise<{ applied: boolean; event: StoredEvent | null }> {
    const p = pairs(fields);
    const out = (await this.redis.eval(
      APPLY,
      0,
      P,
      id,
      expect.join(","),
      p.length / 2,
      ...p,
      event?.name ?? "",
      event ? JSON.stringify(event.data) : "",
      COMPLETED_KEPT,
    )) as string | number | null;
    if (out === null) return { applied: false, event: null };
    if (typeof fields.resultHash === "string") {
      const owner = (await this.get(id))?.owner ?? null;
      await this.redis.set(`${P}result-hash:${owner ?? ""}:${fields.resultHash}`, id);
    }
    return { applied: true, event: typeof out === "string" ? (JSON.parse(out) as StoredEvent) : null };
  }

  async get(id: string): Promise<Generation | null> {
    return fromHash(await this.redis.hgetall(`${P}gen:${id}`));
  }

  private async getMany(ids: string[]): Promise<Generation[]> {
    if (ids.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hgetall(`${P}gen:${id}`);
    const res = (await pipe.exec()) ?? [];
    return res.map(([, h]) => fromHash(h as Record<string, string>)).filter((g) => g !== null);
  }

  /** Queued generations ahead of this one (0: it runs next); null when it is not queued. */
  async queuePosition(g: Generation): Promise<number | null> {
    if (g.status !== "queued") return null;
    return this.redis.zrank(`${P}status:queued`, g.id);
  }

  /** Where a generation put back in the queue stands (0 until its status says queued): RunRecords. */
  async positionIfQueued(g: Generation): Promise<number> {
    return (await this.queuePositionOf(g.id)) ?? 0;
  }

  /** The same by id alone (one command): null when it is not queued, or unknown. */
  async queuePositionOf(id: string): Promise<number | null> {
    return this.redis.zrank(`${P}status:queued`, id);
  }

  async count(status: Status): Promise<number> {
    return this.redis.zcard(`${P}status:${status}`);
  }

  /** Newest first, paging through `source` (a sorted set by seq) below `before`. */
  private async scan(
    source: string,
    before: number,
    limit: number,
    keep: (g: Generation) => boolean,
  ): Promise<Generation[]> {
    const out: Generation[] = [];
    let max = Number.isFinite(before) ? `(${before}` : "+inf";
    for (;;) {
      const ids = await this.redis.zrevrangebyscore(source, max, "-inf", "WITHSCORES", "LIMIT", 0, 200);
      if (ids.length === 0) return out;
      const page: string[] = [];
      for (let i = 0; i < ids.length; i += 2) page.push(ids[i] as string);
      for (const g of await this.getMany(page)) {
        if (keep(g)) out.push(g);
        if (out.length >= limit) return out;
      }
      max = `(${ids[ids.length - 1]}`;
    }
  }

  /** Runs `read` on a sorted set by seq of the generations in `statuses` (all: kontext:gens). */
  private async withStatuses<T>(
    statuses: readonly Status[],
    read: (source: string) => Promise<T>,
  ): Promise<T> {
    const all = STATUSES.every((s) => statuses.includes(s));
    if (all) return read(`${P}gens`);
    if (statuses.length === 0) return read(`${P}tmp:none`); // never written: empty
    // The union of the asked statuses' sets, by seq (a short-lived key of this request).
    const source = `${P}tmp:list:${process.pid}:${Math.random().toString(36).slice(2)}`;
    await this.redis
      .multi()
      .zunionstore(source, statuses.length, ...statuses.map((s) => `${P}status:${s}`))
      .pexpire(source, 60_000)
      .exec();
    try {
      return await read(source);
    } finally {
      await this.redis.del(source);
    }
  }

  async list(filter: ListFilter): Promise<Generation[]> {
    return this.withStatuses(filter.statuses, (source) =>
      this.scan(
        source,
        Number.POSITIVE_INFINITY,
        filter.limit,
        (g) =>
          (filter.owner === undefined || g.owner === filter.owner) &&
          (!filter.model || g.model === filter.model),
      ),
    );
  }

  async history(filter: HistoryFilter): Promise<Generation[]> {
    const q = filter.query?.toLowerCase();
    return this.withStatuses(filter.statuses ?? STATUSES, (source) =>
      this.scan(
        source,
        filter.before ?? Number.POSITIVE_INFINITY,
        filter.limit,
        (g) =>
          (filter.owner === undefined || g.owner === filter.owner) &&
          (filter.starred === undefined || g.starred === filter.starred) &&
          (!q || g.params.prompt.toLowerCase().includes(q)),
      ),
    );
  }

  async countActiveOf(owner: string | null): Promise<number> {
    const ids = [
      ...(await this.redis.zrange(`${P}status:queued`, 0, -1)),
      ...(await this.redis.zrange(`${P}status:processing`, 0, -1)),
    ];
    const gens = await this.getMany(ids);
    return gens.filter((g) => g.owner === owner && !FINAL.includes(g.status)).length;
  }

  async eventsOf(id: string, afterId = 0): Promise<StoredEvent[]> {
    const raw = await this.redis.lrange(`${P}events:${id}`, 0, -1);
    return raw.map((e) => JSON.parse(e) as StoredEvent).filter((e) => e.id > afterId);
  }

  async completedEventsSince(afterId: number): Promise<StoredEvent[]> {
    const raw = await this.redis.zrangebyscore(`${P}completed`, `(${afterId}`, "+inf");
    return raw.map((e) => JSON.parse(e) as StoredEvent);
  }

  async idempotent(
    owner: string | null,
    key: string,
  ): Promise<{ requestHash: string; ids: string[] } | null> {
    const raw = await this.redis.get(idemKey(owner, key));
    return raw ? (JSON.parse(raw) as { requestHash: string; ids: string[] }) : null;
  }

  async setPreview(id: string, jpeg: Buffer): Promise<void> {
    await this.redis.set(`${P}preview:${id}`, jpeg, "PX", PREVIEW_TTL_MS);
  }

  async preview(id: string): Promise<Buffer | null> {
    return this.redis.getBuffer(`${P}preview:${id}`);
  }

  /** Asks whichever worker runs this generation to stop it. */
  async publishCancel(id: string): Promise<void> {
    await this.redis.publish(CANCEL_CHANNEL, id);
  }

  async beat(w: WorkerBeat): Promise<void> {
    await this.redis.hset(`${P}workers`, w.name, JSON.stringify(w));
  }

  async forgetWorker(name: string): Promise<void> {
    await this.redis.hdel(`${P}workers`, name);
  }

  /** The workers that reported within `freshMs`. */
  async workers(freshMs: number): Promise<WorkerBeat[]> {
    const all = await this.redis.hgetall(`${P}workers`);
    const now = Date.now();
    return Object.values(all)
      .map((v) => JSON.parse(v) as WorkerBeat)
      .filter((w) => now - w.at <= freshMs)
      .sort((a, b) => a.name.localeCompare(b.name));
  }
}

function idemKey(owner: string | null, key: string): string {
  return `${P}idem:${createHash("sha256")
    .update(`${owner ?? ""}\n${key}`)
    .digest("hex")}`;
}

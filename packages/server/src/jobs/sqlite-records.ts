// The SQLite records: generations and their events (and idempotency keys, webhook deliveries) in
// SQLite (better-sqlite3, WAL). A generation is written before the request that made it is acknowledged.
import Database from "better-sqlite3";
import {
  type EventName,
  FINAL,
  type Generation,
  type InputRef,
  type InsertMeta,
  type Patch,
  type Status,
  type StoredEvent,
  type StoredParams,
  type Timings,
} from "./types.js";

export type { InsertMeta } from "./types.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS generations (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  model TEXT NOT NULL,
  status TEXT NOT NULL,
  params TEXT NOT NULL,
  input_hash TEXT,
  input_path TEXT,
  input_width INTEGER,
  input_height INTEGER,
  seed INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  enqueued_at INTEGER NOT NULL,
  started_at INTEGER,
  completed_at INTEGER,
  width INTEGER,
  height INTEGER,
  step INTEGER NOT NULL DEFAULT 0,
  total_steps INTEGER,
  result_file TEXT,
  error_code TEXT,
  error_message TEXT,
  timings TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  result_hash TEXT,
  parent_id TEXT
);
CREATE INDEX IF NOT EXISTS generations_status ON generations (status, seq);
CREATE INDEX IF NOT EXISTS generations_completed ON generations (completed_at);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  generation_id TEXT NOT NULL,
  event TEXT NOT NULL,
  data TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_generation ON events (generation_id, id);
CREATE INDEX IF NOT EXISTS events_completed ON events (event, id);
CREATE TABLE IF NOT EXISTS idempotency_keys (
  owner TEXT NOT NULL,
  key TEXT NOT NULL,
  request_hash TEXT NOT NULL,
  generation_ids TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (owner, key)
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  message_id TEXT NOT NULL,
  generation_id TEXT NOT NULL,
  url TEXT NOT NULL,
  body TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_at INTEGER NOT NULL,
  done_at INTEGER,
  outcome TEXT,
  last_error TEXT
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_due ON webhook_deliveries (done_at, next_at);
-- The other stored images a generation refers to (reference_inputs, mask_input), by hash: what
-- inputInUse looks up beside input_hash.
CREATE TABLE IF NOT EXISTS generation_inputs (
  hash TEXT NOT NULL,
  generation_id TEXT NOT NULL,
  PRIMARY KEY (hash, generation_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS generation_inputs_generation ON generation_inputs (generation_id);
`;

interface Row {
  seq: number;
  id: string;
  model: string;
  status: Status;
  params: string;
  input_hash: string | null;
  input_path: string | null;
  input_width: number | null;
  input_height: number | null;
  seed: number;
  attempts: number;
  enqueued_at: number;
  started_at: number | null;
  completed_at: number | null;
  width: number | null;
  height: number | null;
  step: number;
  total_steps: number | null;
  result_file: string | null;
  error_code: string | null;
  error_message: string | null;
  timings: string | null;
  cancel_requested: number;
  result_hash: string | null;
  parent_id: string | null;
  owner: string | null;
  base_url: string | null;
  expired_at: number | null;
  starred: number;
  mask_file: string | null;
  changed_fraction: number | null;
  whole_frame: number | null;
  lora_report: string | null;
  reference_inputs: string | null;
  mask_input: string | null;
}

/** The columns of the fields a run changes (the rest are written once, at insert). */
const COLUMNS: Partial<Record<keyof Generation, (v: never) => [string, unknown]>> = {
  status: (v: Status) => ["status", v],
  attempts: (v: number) => ["attempts", v],
  startedAt: (v: number | null) => ["started_at", v],
  completedAt: (v: number | null) => ["completed_at", v],
  width: (v: number | null) => ["width", v],
  height: (v: number | null) => ["height", v],
  step: (v: number) => ["step", v],
  totalSteps: (v: number | null) => ["total_steps", v],
  resultFile: (v: string | null) => ["result_file", v],
  errorCode: (v: string | null) => ["error_code", v],
  errorMessage: (v: string | null) => ["error_message", v],
  timings: (v: Timings | null) => ["timings", v === null ? null : JSON.stringify(v)],
  cancelRequested: (v: boolean) => ["cancel_requested", v ? 1 : 0],
  resultHash: (v: string | null) => ["result_hash", v],
  expiredAt: (v: number | null) => ["expired_at", v],
  starred: (v: boolean) => ["starred", v ? 1 : 0],
  maskFile: (v: string | null) => ["mask_file", v],
  changedFraction: (v: number | null) => ["changed_fraction", v],
  wholeFrame: (v: boolean | null) => ["whole_frame", v === null ? null : v ? 1 : 0],
  loraReport: (v: Generation["loraReport"]) => ["lora_report", v === null ? null : JSON.stringify(v)],
};

function toRow(fields: Patch): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    const column = COLUMNS[k as keyof Generation];
    if (!column) throw new Error(`the job store does not update ${k}`);
    const [name, value] = column(v as never);
    row[name] = value;
  }
  return row;
}

function fromRow(r: Row): Generation {
  return {
    id: r.id,
    seq: r.seq,
    model: r.model,
    status: r.status,
    params: JSON.parse(r.params) as StoredParams,
    input: inputOf(r),
    references: r.reference_inputs ? (JSON.parse(r.reference_inputs) as InputRef[]) : [],
    mask: r.mask_input ? (JSON.parse(r.mask_input) as InputRef) : null,
    seed: r.seed,
    attempts: r.attempts,
    enqueuedAt: r.enqueued_at,
    startedAt: r.started_at,
    completedAt: r.completed_at,
    width: r.width,
    height: r.height,
    step: r.step,
    totalSteps: r.total_steps,
    resultFile: r.result_file,
    errorCode: r.error_code,
    errorMessage: r.error_message,
    timings: r.timings ? (JSON.parse(r.timings) as Timings) : null,
    cancelRequested: r.cancel_requested === 1,
    resultHash: r.result_hash,
    parentId: r.parent_id,
    owner: r.owner,
    baseUrl: r.base_url,
    expiredAt: r.expired_at,
    starred: r.starred === 1,
    maskFile: r.mask_file ?? null,
    changedFraction: r.changed_fraction ?? null,
    wholeFrame: r.whole_frame === null || r.whole_frame === undefined ? null : r.whole_frame === 1,
    loraReport: r.lora_report ? (JSON.parse(r.lora_report) as Generation["loraReport"]) : null,
  };
}

/** The input columns as a GenerationInput; null when they are (text-to-image). */
function inputOf(r: Row): Generation["input"] {
  if (r.input_hash === null || r.input_path === null || r.input_width === null || r.input_height === null)
    return null;
  return { hash: r.input_hash, path: r.input_path, width: r.input_width, height: r.input_height };
}

export type NewGeneration = Pick<Generation, "id" | "model" | "params" | "input" | "seed"> &
  Partial<Pick<Generation, "references" | "mask">>;

/** The hashes of a generation's images beside input_image (references, mask), once each. */
export function extraHashes(g: Partial<Pick<Generation, "references" | "mask">>): string[] {
  return [...new Set([...(g.references ?? []), ...(g.mask ? [g.mask] : [])].map((r) => r.hash))];
}

export interface WebhookDelivery {
  id: number;
  messageId: string;
  generationId: string;
  url: string;
  body: string;
  attempts: number;
}

export class SqliteRecords {
  private readonly db: Database.Database;
  private readonly stmts;
  /** apply()'s statements, one per combination of expected statuses and columns written. */
  private readonly applyStmts = new Map<string, Database.Statement>();

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL"); // WAL + NORMAL: durable across a process crash
    this.db.pragma("busy_timeout = 5000");
    this.db.exec(SCHEMA);
    migrate(this.db);
    const db = this.db;
    this.stmts = {
      // parent_id: an input whose bytes are an earlier result continues that result's edit chain,
      // only within one owner (a key never links to, or learns of, another key's generations).
      insert: db.prepare(
        `INSERT INTO generations (id, model, status, params, input_hash, input_path, input_width, input_height, reference_inputs, mask_input, seed, enqueued_at, owner, base_url, parent_id)
         VALUES (@id, @model, 'queued', @params, @input_hash, @input_path, @input_width, @input_height, @reference_inputs, @mask_input, @seed, @enqueued_at, @owner, @base_url,
           (SELECT p.id FROM generations p WHERE p.result_hash = @input_hash AND p.owner IS @owner ORDER BY p.seq DESC LIMIT 1))
         RETURNING *`,
      ),
      get: db.prepare("SELECT * FROM generations WHERE id = ?"),
      nextQueued: db.prepare("SELECT * FROM generations WHERE status = 'queued' ORDER BY seq LIMIT 1"),
      countStatus: db.prepare("SELECT COUNT(*) AS n FROM generations WHERE status = ?"),
      position: db.prepare("SELECT COUNT(*) AS n FROM generations WHERE status = 'queued' AND seq < ?"),
      positionOf: db.prepare(
        `SELECT (SELECT COUNT(*) FROM generations q WHERE q.status = 'queued' AND q.seq < g.seq) AS n
         FROM generations g WHERE g.id = ? AND g.status = 'queued'`,
      ),
      deleteEvents: db.prepare("DELETE FROM events WHERE generation_id = ?"),
      deleteGeneration: db.prepare("DELETE FROM generations WHERE id = ?"),
      addExtraInput: db.prepare(
        "INSERT OR IGNORE INTO generation_inputs (hash, generation_id) VALUES (?, ?)",
      ),
      deleteExtraInputs: db.prepare("DELETE FROM generation_inputs WHERE generation_id = ?"),
      appendEvent: db.prepare(
        "INSERT INTO events (generation_id, event, data, created_at) VALUES (?, ?, ?, ?) RETURNING id",
      ),
      eventsOf: db.prepare("SELECT * FROM events WHERE generation_id = ? AND id > ? ORDER BY id"),
      completedSince: db.prepare(
        "SELECT * FROM events WHERE event = 'media_generation_completed' AND id > ? ORDER BY id",
      ),
      putIdempotency: db.prepare(
        "INSERT INTO idempotency_keys (owner, key, request_hash, generation_ids, created_at) VALUES (?, ?, ?, ?, ?)",
      ),
      getIdempotency: db.prepare(
        "SELECT request_hash, generation_ids FROM idempotency_keys WHERE owner = ? AND key = ?",
      ),
      deleteIdempotency: db.prepare("DELETE FROM idempotency_keys WHERE created_at < ?"),
      countActiveOf: db.prepare(
        "SELECT COUNT(*) AS n FROM generations WHERE owner IS ? AND status IN ('queued', 'processing')",
      ),
      withFilesOldestFirst: db.prepare(
        `SELECT * FROM generations WHERE expired_at IS NULL AND completed_at IS NOT NULL AND completed_at < ?
         ORDER BY completed_at LIMIT ?`,
      ),
      inputInUse: db.prepare(
        `SELECT EXISTS (SELECT 1 FROM generations WHERE input_hash = @hash AND expired_at IS NULL AND id != @id)
             OR EXISTS (SELECT 1 FROM generation_inputs i JOIN generations g ON g.id = i.generation_id
                        WHERE i.hash = @hash AND g.expired_at IS NULL AND g.id != @id) AS n`,
      ),
      inputsInUse: db.prepare(
        `SELECT input_hash AS h FROM generations WHERE expired_at IS NULL AND input_hash IN (SELECT value FROM json_each(@hashes))
         UNION SELECT i.hash FROM generation_inputs i JOIN generations g ON g.id = i.generation_id
               WHERE g.expired_at IS NULL AND i.hash IN (SELECT value FROM json_each(@hashes))`,
      ),
      expire: db.prepare("UPDATE generations SET expired_at = ? WHERE id = ?"),
      deleteProgressEvents: db.prepare(
        "DELETE FROM events WHERE generation_id = ? AND event = 'media_generation_progress'",
      ),
      addDelivery: db.prepare(
        "INSERT INTO webhook_deliveries (message_id, generation_id, url, body, next_at) VALUES (?, ?, ?, ?, ?)",
      ),
      dueDeliveries: db.prepare(
        `SELECT id, message_id AS messageId, generation_id AS generationId, url, body, attempts
         FROM webhook_deliveries WHERE done_at IS NULL AND next_at <= ? AND id NOT IN (SELECT value FROM json_each(?))
         ORDER BY next_at, id LIMIT ?`,
      ),
      nextDeliveryAt: db.prepare("SELECT MIN(next_at) AS t FROM webhook_deliveries WHERE done_at IS NULL"),
      deliveryDone: db.prepare(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, done_at = ?, outcome = ?, last_error = ? WHERE id = ?",
      ),
      deliveryRetry: db.prepare(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, next_at = ?, last_error = ? WHERE id = ?",
      ),
      deliveriesOf: db.prepare(
        "SELECT message_id, attempts, done_at, outcome, last_error FROM webhook_deliveries WHERE generation_id = ? ORDER BY id",
      ),
      requeueInterrupted: db.prepare(
        "UPDATE generations SET status = 'queued', started_at = NULL, step = 0, total_steps = NULL, attempts = MAX(attempts - 1, 0) WHERE status = 'processing'",
      ),
    };
  }

  /** Inserts generations as queued, all or none, each with its queued event (returned, not read back). */
  insertMany(
    gens: NewGeneration[],
    now: number,
    queuedEvent: (g: Generation) => Record<string, unknown>,
    meta: InsertMeta = {},
  ): Array<{ generation: Generation; event: StoredEvent }> {
    const tx = this.db.transaction(() => {
      const out: Array<{ generation: Generation; event: StoredEvent }> = [];
      if (meta.idempotency) {
        // In the same transaction: a crash leaves both the generations and their key, or neither.
        this.stmts.putIdempotency.run(
          meta.owner ?? "",
          meta.idempotency.key,
          meta.idempotency.requestHash,
          JSON.stringify(gens.map((g) => g.id)),
          now,
        );
      }
      for (const g of gens) {
        const row = this.stmts.insert.get({
          id: g.id,
          model: g.model,
          params: JSON.stringify(g.params),
          input_hash: g.input?.hash ?? null,
          input_path: g.input?.path ?? null,
          input_width: g.input?.width ?? null,
          input_height: g.input?.height ?? null,
          reference_inputs: g.references?.length ? JSON.stringify(g.references) : null,
          mask_input: g.mask ? JSON.stringify(g.mask) : null,
          seed: g.seed,
          enqueued_at: now,
          owner: meta.owner ?? null,
          base_url: meta.baseUrl ?? null,
        }) as Row;
        for (const hash of extraHashes(g)) this.stmts.addExtraInput.run(hash, g.id);
        const generation = fromRow(row);
        out.push({
          generation,
          event: this.appendEvent(g.id, "media_generation_queued", queuedEvent(generation)),
        });
      }
      return out;
    });
    return tx();
  }

  get(id: string): Generation | null {
    const r = this.stmts.get.get(id) as Row | undefined;
    return r ? fromRow(r) : null;
  }

  nextQueued(): Generation | null {
    const r = this.stmts.nextQueued.get() as Row | undefined;
    return r ? fromRow(r) : null;
  }

  count(status: Status): number {
    return (this.stmts.countStatus.get(status) as { n: number }).n;
  }

  /** Queued generations ahead of this one (0: it runs next). */
  queuePosition(g: Generation): number {
    return (this.stmts.position.get(g.seq) as { n: number }).n;
  }

  /** The position of the generation with this id, or null when it is not queued (or unknown). */
  queuePositionOf(id: string): number | null {
    return (this.stmts.positionOf.get(id) as { n: number } | undefined)?.n ?? null;
  }

  /**
   * Deletes a final generation's row and its events, in one transaction. Returns the generation
   * as it was and whether it was deleted (not while queued or processing); null when there is none.
   */
  removeFinal(id: string): { generation: Generation; removed: boolean } | null {
    return this.db.transaction(() => {
      const g = this.get(id);
      if (!g) return null;
      if (!FINAL.includes(g.status)) return { generation: g, removed: false };
      this.stmts.deleteEvents.run(id);
      this.stmts.deleteExtraInputs.run(id);
      this.stmts.deleteGeneration.run(id);
      return { generation: g, removed: true };
    })();
  }

  /** `owner` given (null included): only that owner's generations. */
  list(filter: {
    model?: string;
    statuses: readonly Status[];
    limit: number;
    owner?: string | null;
  }): Generation[] {
    const marks = filter.statuses.map(() => "?").join(", ");
    const args: unknown[] = [...filter.statuses];
    let sql = `SELECT * FROM generations WHERE status IN (${marks})`;
    if (filter.owner !== undefined) {
      sql += " AND owner IS ?";
      args.push(filter.owner);
    }
    if (filter.model) {
      sql += " AND model = ?";
      args.push(filter.model);
    }
    sql += " ORDER BY seq DESC LIMIT ?";
    args.push(filter.limit);
    return (this.db.prepare(sql).all(...args) as Row[]).map(fromRow);
  }

  /**
   * Generations of every status (or of `statuses`), newest first: those whose prompt contains
   * `query` (case-insensitive), starred or not when `starred` is given, and those older than the
   * generation `before` when given (paging).
   */
  history(filter: {
    query?: string;
    statuses?: readonly Status[];
    starred?: boolean;
    before?: number;
    limit: number;
    owner?: string | null;
  }): Generation[] {
    let sql = "SELECT * FROM generations WHERE 1 = 1";
    const args: unknown[] = [];
    if (filter.statuses) {
      sql += ` AND status IN (${filter.statuses.map(() => "?").join(", ") || "NULL"})`;
      args.push(...filter.statuses);
    }
    if (filter.starred !== undefined) {
      sql += " AND starred = ?";
      args.push(filter.starred ? 1 : 0);
    }
    if (filter.owner !== undefined) {
      sql += " AND owner IS ?";
      args.push(filter.owner);
    }
    if (filter.query) {
      sql += " AND json_extract(params, '$.prompt') LIKE ? ESCAPE '\\'";
      args.push(`%${filter.query.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    }
    if (filter.before !== undefined) {
      sql += " AND seq < ?";
      args.push(filter.before);
    }
    sql += " ORDER BY seq DESC LIMIT ?";
    args.push(filter.limit);
    return (this.db.prepare(sql).all(...args) as Row[]).map(fromRow);
  }

  /** Updates the named columns of one generation. */
  update(id: string, fields: Partial<Omit<Row, "id" | "seq">>): void {
    const keys = Object.keys(fields);
    if (keys.length === 0) return;
    const sql = `UPDATE generations SET ${keys.map((k) => `${k} = @${k}`).join(", ")} WHERE id = @id`;
    this.db.prepare(sql).run({ ...fields, id });
  }

  /**
   * Writes `fields` of one generation, only while its status is one of `expect` (any when empty),
   * and appends `event` with them, in one transaction (one commit): the runner's one write per
   * engine event. `applied` is false when the status did not match.
   */
  apply(
    id: string,
    expect: readonly Status[],
    fields: Patch,
    event?: { name: EventName; data: Record<string, unknown> },
  ): { applied: boolean; event: StoredEvent | null } {
    const row = toRow(fields);
    const keys = Object.keys(row);
    const signature = `${expect.join(",")}|${keys.join(",")}`;
    let stmt = this.applyStmts.get(signature);
    if (!stmt) {
      const set = keys.map((k) => `${k} = @${k}`).join(", ");
      const where = expect.length ? ` AND status IN (${expect.map((s) => `'${s}'`).join(", ")})` : "";
      stmt = keys.length
        ? this.db.prepare(`UPDATE generations SET ${set} WHERE id = @id${where}`)
        : this.db.prepare(`SELECT 1 FROM generations WHERE id = @id${where}`);
      this.applyStmts.set(signature, stmt);
    }
    const write = stmt;
    return this.db.transaction(() => {
      const matched = keys.length ? write.run({ ...row, id }).changes > 0 : write.get({ id }) !== undefined;
      if (!matched) return { applied: false, event: null };
      return { applied: true, event: event ? this.appendEvent(id, event.name, event.data) : null };
    })();
  }

  /** Moves every generation left processing by a crash or restart back to queued. */
  requeueInterrupted(): number {
    return this.stmts.requeueInterrupted.run().changes;
  }

  appendEvent(generationId: string, event: EventName, data: Record<string, unknown>): StoredEvent {
    const row = this.stmts.appendEvent.get(generationId, event, JSON.stringify(data), Date.now()) as {
      id: number;
    };
    return { id: row.id, generationId, event, data };
  }

  eventsOf(generationId: string, afterId = 0): StoredEvent[] {
    return (this.stmts.eventsOf.all(generationId, afterId) as EventRow[]).map(eventFromRow);
  }

  completedEventsSince(afterId: number): StoredEvent[] {
    return (this.stmts.completedSince.all(afterId) as EventRow[]).map(eventFromRow);
  }

  /** The generation ids an idempotency key was first used for, with that request's hash. */
  idempotent(owner: string | null, key: string): { requestHash: string; ids: string[] } | null {
    const r = this.stmts.getIdempotency.get(owner ?? "", key) as
      | { request_hash: string; generation_ids: string }
      | undefined;
    return r ? { requestHash: r.request_hash, ids: JSON.parse(r.generation_ids) as string[] } : null;
  }

  /** Forgets idempotency keys used before `before` (ms). */
  forgetIdempotencyBefore(before: number): number {
    return this.stmts.deleteIdempotency.run(before).changes;
  }

  /** Generations of this owner (null: no key) that are queued or processing. */
  countActiveOf(owner: string | null): number {
    return (this.stmts.countActiveOf.get(owner) as { n: number }).n;
  }

  /** Finished generations that still have their files, finished before `before`, oldest first. */
  withFilesOldestFirst(before: number, limit: number): Generation[] {
    return (this.stmts.withFilesOldestFirst.all(before, limit) as Row[]).map(fromRow);
  }

  /** Whether a generation other than `exceptId` still needs the input stored under `hash`. */
  inputInUse(hash: string, exceptId: string): boolean {
    return (this.stmts.inputInUse.get({ hash, id: exceptId }) as { n: number }).n > 0;
  }

  /** The hashes among `hashes` that a generation with its files still refers to (orphan collection). */
  inputsInUse(hashes: readonly string[]): Set<string> {
    const rows = this.stmts.inputsInUse.all({ hashes: JSON.stringify(hashes) }) as Array<{ h: string }>;
    return new Set(rows.map((r) => r.h));
  }

  /** Marks a generation's files deleted; its row and final events stay as metadata. */
  markExpired(id: string, at: number): void {
    this.db.transaction(() => {
      this.stmts.expire.run(at, id);
      this.stmts.deleteProgressEvents.run(id); // previews are the bulk of the events table
    })();
  }

  addDelivery(messageId: string, generationId: string, url: string, body: string, at: number): void {
    this.stmts.addDelivery.run(messageId, generationId, url, body, at);
  }

  /** Deliveries due at `now`, leaving out those in `busy` (being sent). */
  dueDeliveries(now: number, busy: readonly number[], limit: number): WebhookDelivery[] {
    return this.stmts.dueDeliveries.all(now, JSON.stringify(busy), limit) as WebhookDelivery[];
  }

  nextDeliveryAt(): number | null {
    return (this.stmts.nextDeliveryAt.get() as { t: number | null }).t;
  }

  deliveryDone(id: number, outcome: "delivered" | "gave_up", error: string | null, at: number): void {
    this.stmts.deliveryDone.run(at, outcome, error, id);
  }

  deliveryRetry(id: number, nextAt: number, error: string): void {
    this.stmts.deliveryRetry.run(nextAt, error, id);
  }

  /** A generation's webhook deliveries (for tests and operators). */
  deliveriesOf(generationId: string): Array<{
    message_id: string;
    attempts: number;
    done_at: number | null;
    outcome: string | null;
    last_error: string | null;
  }> {
    return this.stmts.deliveriesOf.all(generationId) as never;
  }

  close(): void {
    this.db.close();
  }
}

/** Adds the columns later versions introduced to a database an earlier version created. */
function migrate(db: Database.Database): void {
  const have = new Set((db.pragma("table_info(generations)") as Array<{ name: string }>).map((c) => c.name));
  for (const [name, type] of [
    ["result_hash", "TEXT"],
    ["parent_id", "TEXT"],
    ["owner", "TEXT"],
    ["base_url", "TEXT"],
    ["expired_at", "INTEGER"],
    ["starred", "INTEGER NOT NULL DEFAULT 0"],
    ["mask_file", "TEXT"],
    ["changed_fraction", "REAL"],
    ["whole_frame", "INTEGER"],
    ["lora_report", "TEXT"], // JSON: the LoRAs a generation ran with and the doctor's report of each
    ["reference_inputs", "TEXT"], // JSON [{hash, width, height}], input_image_2..4
    ["mask_input", "TEXT"], // JSON {hash, width, height}
  ] as const) {
    if (!have.has(name)) db.exec(`ALTER TABLE generations ADD COLUMN ${name} ${type}`);
  }
  allowNullInputs(db);
  db.exec("CREATE INDEX IF NOT EXISTS generations_result_hash ON generations (result_hash)");
  db.exec("CREATE INDEX IF NOT EXISTS generations_input ON generations (input_hash)");
  db.exec("CREATE INDEX IF NOT EXISTS generations_starred ON generations (starred, seq)"); // ?starred=true
}

/** The input columns, nullable since text-to-image generations (which have no input). */
const INPUT_COLUMNS = ["input_hash", "input_path", "input_width", "input_height"];

/**
 * A database made before text-to-image has NOT NULL input columns. SQLite cannot drop a column's
 * constraint in place, so the table is rebuilt from its own definition without it (rows, seqs
 * and the AUTOINCREMENT counter kept), in one transaction; the indexes are made again after.
 */
function allowNullInputs(db: Database.Database): void {
  const columns = db.pragma("table_info(generations)") as Array<{ name: string; notnull: number }>;
  if (!columns.some((c) => INPUT_COLUMNS.includes(c.name) && c.notnull === 1)) return;
  const { sql } = db
    .prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'generations'")
    .get() as {
    sql: string;
  };
  let rebuilt = sql.replace(
    /^CREATE TABLE\s+(IF NOT EXISTS\s+)?"?generations"?/i,
    "CREATE TABLE generations_rebuilt",
  );
  for (const c of INPUT_COLUMNS)
    rebuilt = rebuilt.replace(new RegExp(`(\\b${c}\\s+\\w+)\\s+NOT NULL`, "i"), "$1");
  db.transaction(() => {
    const counter = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'generations'").get() as
      | { seq: number }
      | undefined;
    db.exec(rebuilt);
    db.exec("INSERT INTO generations_rebuilt SELECT * FROM generations");
    db.exec("DROP TABLE generations");
    db.exec("ALTER TABLE generations_rebuilt RENAME TO generations");
    if (counter) db.prepare("UPDATE sqlite_sequence SET seq = ? WHERE name = 'generations'").run(counter.seq);
    db.exec("CREATE INDEX IF NOT EXISTS generations_status ON generations (status, seq)");
    db.exec("CREATE INDEX IF NOT EXISTS generations_completed ON generations (completed_at)");
  })();
}

interface EventRow {
  id: number;
  generation_id: string;
  event: EventName;
  data: string;
}
const eventFromRow = (r: EventRow): StoredEvent => ({
  id: r.id,
  generationId: r.generation_id,
  event: r.event,
  data: JSON.parse(r.data) as Record<string, unknown>,
});

export type { Timings };

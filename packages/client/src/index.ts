// @kontext/client: a typed client for the Kontext API.
export {
  type CallOptions,
  type CancelResponse,
  type EditRequest,
  type EditResponse,
  type ErrorEnvelope,
  FINAL_STATUSES,
  type Generation,
  type GenerationList,
  type GenerationStatus,
  Kontext,
  KontextError,
  type KontextEvent,
  type KontextOptions,
  type Model,
} from "./client.js";
export type { components, paths } from "./generated/openapi.js";
export { type HistoryItem, type HistoryQuery, historyApi } from "./history.js";
export { parseEventStream, type RawEvent } from "./sse.js";

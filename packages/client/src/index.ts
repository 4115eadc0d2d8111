// @kontext/client: a typed client for the Kontext API.
export {
  type CallOptions,
  type CancelResponse,
  type DeleteResponse,
  type EditRequest,
  type EditResponse,
  type ErrorEnvelope,
  FINAL_STATUSES,
  type GenerateRequest,
  type Generation,
  type GenerationList,
  type GenerationStatus,
  type HistoryItem,
  type HistoryQuery,
  Kontext,
  KontextError,
  type KontextEvent,
  type KontextOptions,
  type Model,
} from "./client.js";
export type { components, paths } from "./generated/openapi.js";
export { parseEventStream, type RawEvent } from "./sse.js";

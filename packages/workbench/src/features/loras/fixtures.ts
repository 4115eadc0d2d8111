// A LoRA listing as GET /api/ai/models/flux-kontext-dev/loras answers it: a file that loads, one
// the doctor refuses, one without the optional fields. For unit and browser tests.
export const LISTING = {
  object: "list",
  data: [
    {
      name: "styles/ink-wash",
      size_bytes: 171_966_464,
      format: "kohya",
      matched: 342,
      total: 342,
      unmatched_prefixes: [],
      ok: true,
      error: null,
    },
    {
      name: "broken",
      size_bytes: 2048,
      format: "unknown",
      matched: 0,
      total: 12,
      unmatched_prefixes: ["lora_te1_text_model"],
      ok: false,
      error: "matches 0 of 12 layers (less than 90 %): lora_te1_text_model",
    },
    { name: "detail", size_bytes: 38_000_000, format: "diffusers", matched: 190, total: 190, ok: true },
  ],
};

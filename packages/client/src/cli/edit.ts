// `kontext edit` and `kontext generate`: submit an edit (or text-to-image) as an event stream,
// draw its progress, write the result file.
import { readFile, writeFile } from "node:fs/promises";
import type { EditRequest, GenerateRequest, Kontext } from "../client.js";
import { formatOfPath, UsageError } from "./params.js";
import { ProgressBar, type ProgressOutput } from "./progress.js";

export interface EditArgs {
  input: string;
  prompt: string;
  output: string;
  /** --reference: more images the edit is conditioned on (input_image_2..4), in order */
  references?: string[];
  /** --mask: where the input may change (mask_image) */
  mask?: string;
  /** Request fields from the options (steps, guidance, --set ...). */
  fields: Record<string, unknown>;
}

/** The most --reference images: input_image_2, input_image_3 and input_image_4. */
export const MAX_REFERENCES = 3;

/** An image argument as a request's image field: URLs and data URIs as given, files as base64. */
export async function inputImageOf(input: string, what = "the input image"): Promise<string> {
  if (/^(https?:\/\/|data:)/i.test(input)) return input;
  try {
    return (await readFile(input)).toString("base64");
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${input}: ${(err as NodeJS.ErrnoException).code ?? err}`);
  }
}

/** --reference and --mask as input_image_2..4 and mask_image. */
async function extraImagesOf(args: EditArgs): Promise<Record<string, string>> {
  const refs = args.references ?? [];
  if (refs.length > MAX_REFERENCES)
    throw new UsageError(
      `at most ${MAX_REFERENCES} --reference images (input_image_2..4), got ${refs.length}`,
    );
  const out: Record<string, string> = {};
  for (const [i, ref] of refs.entries())
    out[`input_image_${i + 2}`] = await inputImageOf(ref, "the reference image");
  if (args.mask !== undefined) out.mask_image = await inputImageOf(args.mask, "the mask");
  return out;
}

export async function runEdit(
  kontext: Kontext,
  args: EditArgs,
  out: ProgressOutput & { write(s: string): unknown } = process.stderr,
): Promise<void> {
  const format = outputFormatOf(args);
  const body = {
    ...args.fields,
    input_image: await inputImageOf(args.input),
    ...(await extraImagesOf(args)),
    prompt: args.prompt,
    output_format: format,
    response_format: "b64_json", // the image arrives inline in the last event
  } as EditRequest;
  await streamToFile(kontext, body, args.output, out);
}

/** `kontext generate`: text-to-image, the same stream and file without an input image. */
export async function runGenerate(
  kontext: Kontext,
  args: Omit<EditArgs, "input">,
  out: ProgressOutput & { write(s: string): unknown } = process.stderr,
): Promise<void> {
  const body = {
    ...args.fields,
    prompt: args.prompt,
    output_format: outputFormatOf(args),
    response_format: "b64_json",
  } as GenerateRequest;
  await streamToFile(kontext, body, args.output, out);
}

function outputFormatOf(args: Pick<EditArgs, "fields" | "output">): string {
  const format = (args.fields.output_format as string | undefined) ?? formatOfPath(args.output);
  if (!format) {
    throw new UsageError(
      `cannot tell the output format from ${args.output}: name it .webp, .png or .jpg, or pass --format`,
    );
  }
  return format;
}

/** Streams the submission, drawing its progress, and writes the image to `output`. */
async function streamToFile(
  kontext: Kontext,
  body: EditRequest | GenerateRequest,
  output: string,
  out: ProgressOutput & { write(s: string): unknown },
): Promise<void> {
  const bar = new ProgressBar(out);
  let id: string | null = null;
  // Ctrl-C stops the generation on the server too, not just this client.
  const onSigint = () => {
    if (!id) process.exit(130);
    bar.finish(`cancelling ${id}...`);
    void kontext.cancel(id).finally(() => process.exit(130));
  };
  process.once("SIGINT", onSigint);
  try {
    for await (const e of kontext.stream(body)) {
      switch (e.event) {
        case "media_generation_queued":
          id = e.data.generation_id;
          bar.status(`queued ${id}${e.data.queue_position ? ` (${e.data.queue_position} ahead)` : ""}`);
          break;
        case "media_generation_started":
          bar.status(`started: ${e.data.width}x${e.data.height}, seed ${e.data.seed}`);
          bar.update(0, e.data.total_steps);
          break;
        case "media_generation_progress":
          bar.update(e.data.step, e.data.total_steps);
          break;
        case "media_generation_completed": {
          const d = e.data;
          if (d.status !== "succeeded") {
            bar.finish(`${d.status}: ${d.generation_id}`);
            throw new Error(`generation ${d.generation_id} ${d.status}: ${d.error ?? "no reason given"}`);
          }
          if (!d.b64_json) throw new Error(`generation ${d.generation_id}: the server sent no image`);
          await writeFile(output, Buffer.from(d.b64_json, "base64"));
          const secs = d.timings ? `, ${((d.timings.inference + d.timings.encode) / 1000).toFixed(1)} s` : "";
          bar.finish(`saved ${output} (${d.width}x${d.height}, seed ${d.seed}${secs}): ${d.url}`);
          return;
        }
      }
    }
    throw new Error("the event stream ended before the generation finished");
  } finally {
    process.off("SIGINT", onSigint);
  }
}

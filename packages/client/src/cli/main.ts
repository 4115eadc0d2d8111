// The `kontext` command line: edit images, generate them from text, manage jobs and models, run
// the server, benchmark.
// KONTEXT_URL and KONTEXT_API_KEY (or --url / --api-key) point it at a server.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Command, Option } from "commander";
import { Kontext, KontextError } from "../client.js";
import { formatBench, runBench } from "./bench.js";
import { MAX_REFERENCES, runEdit, runGenerate } from "./edit.js";
import { parseSets, typedValue, UsageError } from "./params.js";
import { serve } from "./serve.js";
import { generationsTable, modelsTable } from "./tables.js";

const collect = (v: string, all: string[]) => [...all, v];

function clientOf(cmd: Command): Kontext {
  const g = cmd.optsWithGlobals<{ url?: string; apiKey?: string }>();
  const opts: { baseUrl?: string; apiKey?: string } = {};
  if (g.url) opts.baseUrl = g.url;
  if (g.apiKey) opts.apiKey = g.apiKey;
  return new Kontext(opts);
}

const print = (s: string) => process.stdout.write(`${s}\n`);
const json = (v: unknown) => print(JSON.stringify(v, null, 2));

/** `--lora name[:scale]`: the scale is what follows the last colon when it is a number. */
export function parseLora(spec: string): { name: string; scale?: number } {
  const at = spec.lastIndexOf(":");
  const tail = at > 0 ? spec.slice(at + 1) : "";
  if (tail !== "" && Number.isFinite(Number(tail))) return { name: spec.slice(0, at), scale: Number(tail) };
  return { name: spec };
}

/** The request options `edit` and `generate` share (each field's rules are the server's). */
function requestOptions(cmd: Command, ratios: string): Command {
  return cmd
    .option("-m, --model <id>", "model (default flux-kontext-dev)")
    .option("-s, --steps <n>", "num_inference_steps, 4–50 (default 28)")
    .option("-g, --guidance <g>", "guidance, 0–10 (default 2.5)")
    .option("--seed <n>", "seed (random when left out; printed at the end)")
    .option("-a, --aspect-ratio <ratio>", `aspect_ratio: ${ratios}`)
    .option("-f, --format <format>", "output_format: webp, png or jpg (default: from the output file's name)")
    .option("-q, --quality <q>", "output_quality, 0–100 (default 80; png ignores it)")
    .option("--no-safety-checker", "disable_safety_checker: skip the safety classifier")
    .option(
      "--negative-prompt <text>",
      "negative_prompt: what the image should not show (with --true-cfg-scale above 1)",
    )
    .option(
      "--true-cfg-scale <x>",
      "true_cfg_scale, 1–10 (default 1 = off; above 1 each step costs about double)",
    )
    .option(
      "--lora <name[:scale]>",
      "a LoRA from the server's KONTEXT_LORA_DIR, scale −4…4 (default 1; repeatable, up to 4)",
      collect,
      [],
    );
}

/** The request fields the options of `edit` or `generate` give, over --set's. */
function fieldsOf(o: Record<string, unknown>): Record<string, unknown> {
  const fields: Record<string, unknown> = parseSets(o.set as string[]);
  const map: Array<[string, string]> = [
    ["model", "model"],
    ["steps", "num_inference_steps"],
    ["guidance", "guidance"],
    ["seed", "seed"],
    ["aspectRatio", "aspect_ratio"],
    ["format", "output_format"],
    ["quality", "output_quality"],
    ["trueCfgScale", "true_cfg_scale"],
    ["strength", "strength"],
  ];
  for (const [opt, field] of map) {
    const v = o[opt];
    if (typeof v === "string") fields[field] = opt === "model" || opt === "aspectRatio" ? v : typedValue(v);
  }
  if (o.safetyChecker === false) fields.disable_safety_checker = true;
  if (o.negativePrompt !== undefined) fields.negative_prompt = o.negativePrompt;
  if ((o.lora as string[]).length > 0) fields.loras = (o.lora as string[]).map(parseLora);
  return fields;
}

export function buildProgram(): Command {
  const program = new Command("kontext")
    .description("Kontext: edit images with FLUX.1 Kontext [dev] on a Kontext server")
    .addOption(new Option("--url <url>", "the server").env("KONTEXT_URL").default("http://127.0.0.1:8080"))
    .addOption(new Option("--api-key <key>", "sent as Authorization: Bearer <key>").env("KONTEXT_API_KEY"))
    .showHelpAfterError()
    .configureHelp({ showGlobalOptions: true });

  const edit = program
    .command("edit")
    .description("edit an image and save the result, with a progress bar")
    .requiredOption("-i, --input <file|url>", "the image to edit (a file, an http(s) URL or a data URI)")
    .requiredOption("-p, --prompt <text>", "what to change")
    .requiredOption("-o, --output <file>", "where to write the result (.webp, .png or .jpg)");
  requestOptions(edit, "match_input_image (default), 1:1, 16:9, ...")
    .option("--strength <x>", "strength, above 0 up to 1 (default 1; below 1 starts from the input: img2img)")
    .option(
      "--reference <file|url>",
      `a reference image the edit also sees (input_image_2..4; repeatable, up to ${MAX_REFERENCES})`,
      collect,
      [],
    )
    .option(
      "--mask <file|url>",
      "mask_image: where the input may change (white = change, black = keep; or transparent = change)",
    )
    .option("--set <key=value>", "any other request field (repeatable)", collect, [])
    .action(async (o, cmd: Command) => {
      await runEdit(clientOf(cmd), {
        input: o.input,
        prompt: o.prompt,
        output: o.output,
        references: o.reference as string[],
        ...(o.mask !== undefined ? { mask: o.mask as string } : {}),
        fields: fieldsOf(o),
      });
    });

  const generate = program
    .command("generate <prompt>")
    .description("make an image from the prompt alone (text-to-image) and save it, with a progress bar")
    .requiredOption("-o, --output <file>", "where to write the image (.webp, .png or .jpg)");
  requestOptions(generate, "1:1 (default), 16:9, 21:9, 3:2, 2:3, 4:5, 5:4, 3:4, 4:3, 9:16, 9:21")
    .option("--set <key=value>", "any other request field (repeatable)", collect, [])
    .action(async (prompt: string, o, cmd: Command) => {
      await runGenerate(clientOf(cmd), { prompt, output: o.output, fields: fieldsOf(o) });
    });

  const jobs = program.command("jobs").description("list, inspect and cancel generations");
  jobs
    .command("ls")
    .description("generations, newest first (active ones unless --all or --status)")
    .option("--status <list>", "comma-separated: queued, processing, succeeded, failed, cancelled")
    .option("--all", "every status")
    .option("-n, --limit <n>", "at most this many (default 100)")
    .option("--json", "print JSON")
    .action(async (o, cmd: Command) => {
      const q: { status?: string; limit?: number } = {};
      if (o.all) q.status = "all";
      else if (o.status) q.status = o.status;
      if (o.limit !== undefined) q.limit = typedValue(o.limit) as number;
      const list = await clientOf(cmd).list(q);
      if (o.json) json(list);
      else print(list.count === 0 ? "no generations" : generationsTable(list.generations));
    });
  jobs
    .command("get <id>")
    .description("one generation (JSON)")
    .action(async (id: string, _o, cmd: Command) => {
      json(await clientOf(cmd).get(id));
    });
  jobs
    .command("cancel <id>")
    .description("cancel a queued generation, or stop a processing one between two steps")
    .action(async (id: string, _o, cmd: Command) => {
      await clientOf(cmd).cancel(id);
      print(`cancelled ${id}`);
    });

  program
    .command("models")
    .description("the models the server runs")
    .option("--json", "print JSON (with each model's request schema)")
    .action(async (o, cmd: Command) => {
      const models = await clientOf(cmd).models();
      if (o.json) json(models);
      else print(modelsTable(models));
    });

  program
    .command("serve")
    .description("run the server from this repository (as npm start does), with engines on this machine")
    .option("--host <host>", "HOST")
    .option("--port <port>", "PORT")
    .option("--data-dir <dir>", "KONTEXT_DATA_DIR")
    .option("--model-dir <dir>", "KONTEXT_MODEL_DIR (unset: the tiny demo model, whose output is noise)")
    .option("--devices <list>", "KONTEXT_DEVICES, e.g. cuda:0,cuda:1")
    .action(async (o) => {
      process.exitCode = await serve(o);
    });

  program
    .command("worker")
    .description("run engines that pull jobs from Redis, without the HTTP API (KONTEXT_ROLE=worker)")
    .option("--redis-url <url>", "KONTEXT_REDIS_URL, the Redis the gateways use")
    .option(
      "--data-dir <dir>",
      "KONTEXT_DATA_DIR, this machine's (the store shared with the gateways is KONTEXT_SHARED_DIR)",
    )
    .option("--model-dir <dir>", "KONTEXT_MODEL_DIR")
    .option("--devices <list>", "KONTEXT_DEVICES")
    .action(async (o) => {
      const redisUrl = (o.redisUrl as string | undefined) ?? process.env.KONTEXT_REDIS_URL;
      if (!redisUrl && !process.env.KONTEXT_CONFIG) {
        throw new UsageError(
          "a worker pulls jobs from Redis: pass --redis-url or set KONTEXT_REDIS_URL (e.g. redis://10.0.0.5:6379/0)",
        );
      }
      const { redisUrl: _r, ...serveOpts } = o;
      process.exitCode = await serve(serveOpts, {
        KONTEXT_ROLE: "worker",
        ...(redisUrl ? { KONTEXT_REDIS_URL: redisUrl } : {}),
      });
    });

  program
    .command("bench")
    .description(
      "benchmark the API path: sync edits, with the client's wall time split into the server's parts",
    )
    .option("-n, --requests <n>", "measured requests", "10")
    .option("--warmup <n>", "requests before measuring", "1")
    .option("-c, --concurrency <n>", "requests in flight at once", "1")
    .option("-s, --steps <n>", "num_inference_steps", "4")
    .option("--size <WxH>", "size of the generated input image", "512x512")
    .option("-i, --input <file>", "an input image instead of the generated one")
    .option("-a, --aspect-ratio <ratio>", "aspect_ratio", "1:1")
    .addOption(
      new Option("--response-format <f>", "response_format").choices(["url", "b64_json"]).default("url"),
    )
    .option("--json", "print JSON")
    .action(async (o, cmd: Command) => {
      const result = await runBench(clientOf(cmd), {
        requests: Number(o.requests),
        warmup: Number(o.warmup),
        concurrency: Number(o.concurrency),
        steps: typedValue(o.steps) as number,
        size: o.size,
        input: o.input,
        aspectRatio: o.aspectRatio,
        responseFormat: o.responseFormat,
      });
      print(o.json ? JSON.stringify(result, null, 2) : formatBench(result));
    });

  return program;
}

/** What the user sees when a command fails: the server's message, or why it was not reached. */
export function describeFailure(err: unknown, url: string): { message: string; code: number } {
  if (err instanceof UsageError) return { message: err.message, code: 2 };
  if (err instanceof KontextError)
    return { message: `${err.message} (HTTP ${err.status}, ${err.code})`, code: 1 };
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (err instanceof TypeError && cause) {
    return {
      message: `cannot reach ${url} (${cause.code ?? cause.message}): start a server with \`kontext serve\`, or point KONTEXT_URL at one`,
      code: 1,
    };
  }
  return { message: (err as Error).message ?? String(err), code: 1 };
}

export async function main(argv = process.argv): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const { message, code } = describeFailure(err, program.opts<{ url: string }>().url);
    process.stderr.write(`kontext: ${message}\n`);
    process.exitCode = code;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();

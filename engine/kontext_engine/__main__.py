"""Command line: `python -m kontext_engine serve …` runs the engine; `tiny OUT` writes the tiny model."""

import argparse
import logging
import os
import sys
import threading
from pathlib import Path

from .errors import FatalCode, ModelDirError


def serve(args: argparse.Namespace) -> int:
    # Events get their own descriptor; fd 1 is pointed at stderr so no stray print reaches the gateway.
    events = os.fdopen(args.events_fd, "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="engine %(levelname)s %(message)s")

    from . import protocol as p

    def fatal(code: FatalCode, message: str) -> int:
        logging.error(message)
        events.write(p.encode(p.fatal_event(code, message)))
        events.flush()
        return 3

    safety_dir = args.safety_checker_dir or (args.model_dir / "safety_checker")
    if not args.no_safety_checker and not (safety_dir / "config.json").is_file():
        return fatal(
            "config_invalid",
            f"the safety checker is on but no classifier was found at {safety_dir}: put a local copy of an NSFW "
            "image classifier (e.g. Falconsai/nsfw_image_detection) there, point --safety-checker-dir "
            "(KONTEXT_SAFETY_CHECKER_DIR) at one, or turn the checker off for this deployment with "
            "--no-safety-checker (KONTEXT_SAFETY_CHECKER=off)",
        )
    try:
        import torch

        from . import environment as env
        from .editor import Editor
        from .loading import load_model
        from .safety import SafetyChecker
        from .server import EngineServer
        from .speed import (
            accelerate,
            attention_backend,
            model_dtype,
            parse_buckets,
            resolve_compile,
            resolve_precision,
            warmup_buckets,
        )

        facts = env.cuda_facts()
        variant = env.model_variant(args.model_dir)
        device = env.choose_device(args.device, variant, facts)
        if device.type == "cuda":
            torch.cuda.set_device(device)  # anything placed on plain "cuda" lands on this engine's GPU
        logging.info(
            "torch %s (CUDA build %s), driver %s; device %s",
            facts.torch_version,
            facts.cuda_build,
            facts.driver,
            device,
        )
        precision = resolve_precision(args.precision, device, variant)
        compile_blocks = resolve_compile(args.compile, device)
        parse_buckets(args.warmup_buckets)  # a bad spec fails before the model loads
        model = load_model(args.model_dir, device, model_dtype(precision), offload=args.low_memory)
        speed = accelerate(model, precision, compile_blocks, args.compile_cache)
        tc = model.transformer.config
        attention = attention_backend(device, model.dtype, tc.num_attention_heads, tc.attention_head_dim, 8704)
        logging.info("attention: %s (1024² edit, 8704 tokens)", attention)
        safety = None if args.no_safety_checker else SafetyChecker(safety_dir, device, args.safety_threshold)
        editor = Editor(
            model,
            safety,
            args.prompt_cache,
            args.condition_cache,
            lora_dir=args.lora_dir,
            **({} if args.max_condition_tokens is None else {"max_condition_tokens": args.max_condition_tokens}),
        )
        buckets = warmup_buckets(args.warmup_buckets, speed.compiled)
        if speed.compiled and buckets:
            logging.info(
                "compiling the transformer blocks while warming up %d bucket(s) at batch 1 and 2 (kernels cached in "
                "%s): minutes on the first start, seconds after",
                len(buckets),
                args.compile_cache or "torch's default cache",
            )
        elif speed.compiled:
            logging.warning("compiled without warm-up buckets: the first requests compile while they run")
        editor.warm_up(buckets, (1, 2) if speed.compiled else (1,))
        environment = env.describe(device, attention)
    except env.DeviceUnavailable as e:
        return fatal("device_unavailable", str(e))
    except ModelDirError as e:
        return fatal("load_failed", f"model directory {args.model_dir}: {e}")
    except ValueError as e:  # a setting out of range, e.g. an unknown warm-up bucket
        return fatal("config_invalid", str(e))
    except Exception as e:
        logging.exception("loading failed")
        return fatal("load_failed", f"{type(e).__name__}: {e}")

    info = {
        "name": "flux-kontext-dev",
        "variant": model.variant,
        "transformer_source": model.transformer_source,
        "demo": model.variant == "tiny",
    }
    server = EngineServer(editor, events, info)
    dtype = str(model.dtype).removeprefix("torch.")
    server.send(
        p.ready_event(info, str(device), dtype, safety is not None, speed.precision, speed.compiled, environment)
    )
    logging.info(
        "ready: %s on %s (%s, %s, %s); %s",
        args.model_dir,
        device,
        speed.precision,
        dtype,
        "compiled" if speed.compiled else "eager",
        ", ".join(f"{k} {v}" for k, v in environment.items() if v is not None),
    )
    reader = threading.Thread(target=server.read_forever, args=(sys.stdin.buffer.readline,), daemon=True)
    reader.start()
    server.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kontext_engine")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="load the model and serve the engine protocol (docs/protocol.md)")
    s.add_argument("--model-dir", type=Path, required=True, help="FLUX.1 Kontext [dev] in the Hugging Face layout")
    s.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda, cuda:N")
    s.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp8", "fp8-weights"],
        help="auto: fp8 on GPUs with FP8 tensor cores, bf16 on other GPUs, fp32 on CPU; fp8-weights: e4m3 "
        "weights with bf16 compute on any GPU (the whole model in about 17 GB)",
    )
    s.add_argument(
        "--compile",
        nargs="?",
        const="on",
        default="auto",
        choices=["auto", "on", "off"],
        help="compile the transformer blocks (torch.compile); auto: on with CUDA, off on the CPU; --compile alone: on",
    )
    s.add_argument("--compile-cache", type=Path, help="directory for compiled kernels, kept across restarts")
    s.add_argument(
        "--warmup-buckets",
        default="auto",
        help="auto (1024x1024 when compiled), none, all, or WxH,… output sizes run (batch 1 and 2) before ready",
    )
    s.add_argument(
        "--low-memory",
        action="store_true",
        help="keep parts on the CPU and move one at a time to the GPU (16–24 GB cards)",
    )
    s.add_argument("--safety-checker-dir", type=Path, help="image classifier (default: MODEL_DIR/safety_checker)")
    s.add_argument("--no-safety-checker", action="store_true", help="run without a safety checker")
    s.add_argument("--safety-threshold", type=float, default=0.85, help="flag at nsfw score ≥ this")
    s.add_argument("--events-fd", type=int, default=3, help="file descriptor the engine writes events to")
    s.add_argument("--prompt-cache", type=int, default=32, help="prompt embeddings kept (LRU)")
    s.add_argument("--condition-cache", type=int, default=16, help="condition-image latents kept (LRU)")
    s.add_argument(
        "--max-condition-tokens",
        type=int,
        help="cap on the condition images' tokens together, at least 4150 (default 12288 = 3 × 4096; attention "
        "grows with the square of the sequence: docs/references.md)",
    )
    s.add_argument("--lora-dir", type=Path, help="LoRA adapters (.safetensors, subfolders allowed): docs/loras.md")
    t = sub.add_parser("tiny", help="write the tiny model (see kontext_engine.tiny)")
    t.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.command == "tiny":
        from .tiny import main as tiny_main

        tiny_main(args.rest)
        return
    sys.exit(serve(args))


if __name__ == "__main__":
    main()

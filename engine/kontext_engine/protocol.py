"""Engine protocol v1: the messages, parsed and built (docs/protocol.md is the contract).

Every message is one JSON object per line with `"v": 1` and a `"type"`. `parse` turns a line from
the gateway into a typed message or raises `ProtocolError` naming what is wrong; the `*_event`
builders make what the engine sends back.
"""

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import EngineError, ErrorCode
from .lora import MAX_ADAPTERS, MAX_SCALE, LoraSpec
from .resolution import ASPECT_RATIOS, MAX_INPUT_SIDE

VERSION = 1
MAX_LINE_BYTES = 1 << 20
MAX_PROMPT_CHARS = 10_000
MAX_STEPS = 50
MAX_GUIDANCE = 10.0
MAX_GENERATIONS = 4
MAX_SEED = 2**53 - 1  # the largest integer a JavaScript number holds exactly
OUTPUT_RESOLUTIONS = ("bucket", "input")
MAX_TRUE_CFG = 10.0
MAX_LORAS = MAX_ADAPTERS
MAX_LORA_SCALE = MAX_SCALE
MAX_LORA_NAME = 512
REFERENCE_METHODS = ("offset", "index")
MAX_REFERENCES = 3  # input_image_2..4


class ProtocolError(EngineError):
    def __init__(self, code: ErrorCode, message: str, field: str | None = None, job_id: str | None = None):
        super().__init__(code, message, field)
        self.job_id = job_id


@dataclass(frozen=True)
class JobInput:
    path: str
    width: int
    height: int


@dataclass(frozen=True)
class Job:
    job_id: str
    seeds: tuple[int, ...]
    output_dir: str
    # The request parameters (PARAMS), checked, by name: EditRequest's keyword arguments as they are.
    params: dict[str, Any]
    input: JobInput | None = None  # None: text-to-image (EditRequest image=None)
    preview: bool = False
    references: tuple[JobInput, ...] = ()  # input_image_2..4: raw RGB files like input
    mask: JobInput | None = None  # mask_image: raw 8-bit grey at the input's size, 255 = change


@dataclass(frozen=True)
class Cancel:
    job_id: str


@dataclass(frozen=True)
class Health:
    request_id: str | None


@dataclass(frozen=True)
class Shutdown:
    pass


Message = Job | Cancel | Health | Shutdown


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_in(v: Any, lo: int, hi: int) -> bool:
    return _is_int(v) and lo <= v <= hi


class _Fields:
    """Reads the fields of one message, raising `invalid_request` that names the first bad one."""

    def __init__(self, obj: dict[str, Any], job_id: str | None, prefix: str = ""):
        self.obj, self.job_id, self.prefix = obj, job_id, prefix

    def bad(self, name: str, rule: str) -> ProtocolError:
        value = json.dumps(self.obj.get(name)) if name in self.obj else "nothing"
        field = self.prefix + name
        return ProtocolError("invalid_request", f"{field} must be {rule}, got {value}", field, self.job_id)

    def get(self, name: str, ok: bool, rule: str) -> Any:
        if name not in self.obj or not ok:
            raise self.bad(name, rule)
        return self.obj[name]

    def only(self, allowed: set[str]) -> None:
        for name in self.obj:
            if name not in allowed:
                field = self.prefix + name
                raise ProtocolError("invalid_request", f"unknown field {field}", field, self.job_id)


@dataclass(frozen=True)
class Param:
    """One request parameter of the job message: its rule, and its default when it may be left out."""

    ok: Callable[[Any], bool]
    rule: str
    required: bool = True
    default: Any = None
    convert: Callable[[Any], Any] = lambda v: v


def _finite_in(lo: float, hi: float) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and lo <= v <= hi


def _boolean(v: Any) -> bool:
    return isinstance(v, bool)


def _lora_ok(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and set(v) <= {"name", "scale"}
        and isinstance(v.get("name"), str)
        and 1 <= len(v["name"]) <= MAX_LORA_NAME
        and ("scale" not in v or _finite_in(-MAX_LORA_SCALE, MAX_LORA_SCALE)(v["scale"]))
    )


def _loras_ok(v: Any) -> bool:
    return isinstance(v, list) and len(v) <= MAX_LORAS and all(_lora_ok(x) for x in v)


_LORAS_RULE = (
    f"a list of at most {MAX_LORAS} objects {{name (1–{MAX_LORA_NAME} characters), "
    f"scale (optional, finite, −{MAX_LORA_SCALE:g}…{MAX_LORA_SCALE:g})}}"
)


def _to_lora_specs(v: list[dict[str, Any]]) -> tuple[LoraSpec, ...]:
    return tuple(LoraSpec(x["name"], float(x.get("scale", 1.0))) for x in v)


# The request parameters the engine takes (docs/protocol/protocol.schema.json lists the same: the job
# message's fields other than the envelope; tests/test_protocol.py checks both against each other and
# against EditRequest). A new parameter is one entry here and one EditRequest field.
PARAMS: dict[str, Param] = {
    "prompt": Param(
        lambda v: isinstance(v, str) and v.strip() != "" and len(v) <= MAX_PROMPT_CHARS,
        f"a non-empty string of at most {MAX_PROMPT_CHARS} characters",
    ),
    "aspect_ratio": Param(lambda v: v in ASPECT_RATIOS, "one of " + ", ".join(ASPECT_RATIOS)),
    "num_inference_steps": Param(lambda v: _int_in(v, 1, MAX_STEPS), f"an integer 1–{MAX_STEPS}"),
    "guidance": Param(_finite_in(0, MAX_GUIDANCE), f"a finite number from 0 to {MAX_GUIDANCE:g}", convert=float),
    "disable_safety_checker": Param(_boolean, "a boolean"),
    "fast": Param(_boolean, "a boolean", required=False, default=False),
    "negative_prompt": Param(
        lambda v: isinstance(v, str) and len(v) <= MAX_PROMPT_CHARS,
        f"a string of at most {MAX_PROMPT_CHARS} characters",
        required=False,
    ),
    "true_cfg_scale": Param(
        _finite_in(1, MAX_TRUE_CFG), f"a finite number from 1 to {MAX_TRUE_CFG:g}", False, 1.0, float
    ),
    "strength": Param(lambda v: _finite_in(0, 1)(v) and v > 0, "a finite number above 0, at most 1", False, 1.0, float),
    "reference_method": Param(
        lambda v: v in REFERENCE_METHODS, "one of " + ", ".join(REFERENCE_METHODS), False, "offset"
    ),
    "loras": Param(_loras_ok, _LORAS_RULE, False, (), _to_lora_specs),
    # full_resolution.py, after the edit: the outputs at the input's own size
    "output_resolution": Param(lambda v: v in OUTPUT_RESOLUTIONS, "one of bucket, input", False, "bucket"),
    "preserve_unedited": Param(_boolean, "a boolean", required=False),  # None: true with output_resolution input
}

_ENVELOPE = {"v", "type", "job_id", "input", "references", "mask", "seeds", "output_dir", "preview"}
_JOB_FIELDS = _ENVELOPE | set(PARAMS)


def _job_id(obj: dict[str, Any]) -> str | None:
    v = obj.get("job_id")
    return v if isinstance(v, str) and 1 <= len(v) <= 128 else None


def _optional_bool(f: _Fields, obj: dict[str, Any], name: str) -> bool:
    return bool(f.get(name, isinstance(obj[name], bool), "a boolean")) if name in obj else False


def _file(f: _Fields, raw: Any, job_id: str | None, prefix: str) -> JobInput:
    """One {path, width, height} of the job (input, references[i], mask), its fields named under `prefix`."""
    i = _Fields(raw, job_id, prefix)
    i.only({"path", "width", "height"})
    return JobInput(
        path=i.get("path", isinstance(raw.get("path"), str) and raw["path"] != "", "a file path"),
        width=i.get("width", _int_in(raw.get("width"), 1, MAX_INPUT_SIDE), f"an integer 1–{MAX_INPUT_SIDE}"),
        height=i.get("height", _int_in(raw.get("height"), 1, MAX_INPUT_SIDE), f"an integer 1–{MAX_INPUT_SIDE}"),
    )


def _parse_job(obj: dict[str, Any]) -> Job:
    job_id = _job_id(obj)
    f = _Fields(obj, job_id)
    f.get("job_id", job_id is not None, "a string of 1 to 128 characters")
    f.only(_JOB_FIELDS)
    job_input = None  # text-to-image: no input
    if "input" in obj:
        raw_input = f.get("input", isinstance(obj["input"], dict), "an object {path, width, height}")
        job_input = _file(f, raw_input, job_id, "input.")
    references: tuple[JobInput, ...] = ()
    if "references" in obj:
        raw_refs = obj["references"]
        ok = (
            isinstance(raw_refs, list)
            and 1 <= len(raw_refs) <= MAX_REFERENCES
            and all(isinstance(r, dict) for r in raw_refs)
        )
        f.get("references", ok, f"a list of 1–{MAX_REFERENCES} objects {{path, width, height}}")
        references = tuple(_file(f, r, job_id, f"references[{k}].") for k, r in enumerate(raw_refs))
    mask = None
    if "mask" in obj:
        raw_mask = f.get("mask", isinstance(obj["mask"], dict), "an object {path, width, height}")
        mask = _file(f, raw_mask, job_id, "mask.")
        if job_input is not None and (mask.width, mask.height) != (job_input.width, job_input.height):
            raise f.bad("mask", f"at the input's size {job_input.width}×{job_input.height}")
    params: dict[str, Any] = {}
    for name, param in PARAMS.items():
        if name not in obj and not param.required:
            params[name] = param.default
            continue
        params[name] = param.convert(f.get(name, name in obj and param.ok(obj[name]), param.rule))
    seeds = obj.get("seeds")
    ok_seeds = (
        isinstance(seeds, list) and 1 <= len(seeds) <= MAX_GENERATIONS and all(_int_in(s, 0, MAX_SEED) for s in seeds)
    )
    f.get("seeds", ok_seeds, f"a list of 1–{MAX_GENERATIONS} integers from 0 to 2^53−1")
    out = obj.get("output_dir")
    f.get("output_dir", isinstance(out, str) and os.path.isabs(out), "an absolute path")
    preview = _optional_bool(f, obj, "preview")
    return Job(job_id, tuple(seeds), out, params, job_input, preview, references, mask)


def parse(line: str | bytes) -> Message:
    if len(line) > MAX_LINE_BYTES:
        raise ProtocolError("malformed_message", f"message longer than {MAX_LINE_BYTES} bytes")
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise ProtocolError("malformed_message", f"not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("malformed_message", "a message must be a JSON object")
    if obj.get("v") != VERSION:
        raise ProtocolError(
            "unsupported_version",
            f"protocol version {obj.get('v')!r} is not supported (this engine speaks {VERSION})",
            job_id=_job_id(obj),
        )
    kind = obj.get("type")
    if kind == "job":
        return _parse_job(obj)
    if kind == "cancel":
        job_id = _job_id(obj)
        _Fields(obj, job_id).get("job_id", job_id is not None, "a string of 1 to 128 characters")
        return Cancel(job_id or "")
    if kind == "health":
        rid = obj.get("request_id")
        if rid is not None and not isinstance(rid, str):
            raise _Fields(obj, None).bad("request_id", "a string")
        return Health(rid)
    if kind == "shutdown":
        return Shutdown()
    raise ProtocolError("unknown_type", f"unknown message type {kind!r}", job_id=_job_id(obj))


def encode(event: dict[str, Any]) -> str:
    """One line of JSON (no NaN: the gateway's parser would refuse it)."""
    return json.dumps(event, allow_nan=False, separators=(", ", ": ")) + "\n"


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"v": VERSION, "type": kind, **fields}


def ready_event(
    model: dict[str, Any],
    device: str,
    dtype: str,
    safety_checker: bool,
    precision: str,
    compiled: bool,
    environment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "protocol": VERSION,
        "model": model,
        "device": device,
        "dtype": dtype,
        "safety_checker": safety_checker,
        "precision": precision,
        "compiled": compiled,
        "pid": os.getpid(),
    }
    if environment is not None:  # optional: torch, CUDA build, driver, GPU (environment.describe)
        fields["environment"] = environment
    return _event("ready", **fields)


def fatal_event(code: str, message: str) -> dict[str, Any]:
    return _event("fatal", code=code, message=message)


def started_event(job_id: str, width: int, height: int, seeds: tuple[int, ...]) -> dict[str, Any]:
    return _event("started", job_id=job_id, width=width, height=height, seeds=list(seeds))


def progress_event(job_id: str, step: int, total: int, preview: dict[str, Any] | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {"job_id": job_id, "step": step, "total_steps": total}
    if preview is not None:
        fields["preview"] = preview
    return _event("progress", **fields)


def result_event(
    job_id: str,
    images: list[dict[str, Any]],
    timings_ms: dict[str, float],
    cache: dict[str, bool],
    prompt_tokens: dict[str, int | bool] | None = None,
    loras: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {"job_id": job_id, "images": images, "timings_ms": timings_ms, "cache": cache}
    if prompt_tokens:  # optional: {t5, t5_max, clip, clip_max, truncated} (Editor.prompt_tokens)
        fields["prompt_tokens"] = prompt_tokens
    if loras:  # only when the job named LoRAs: the doctor's report of each (lora.used_reports)
        fields["loras"] = loras
    return _event("result", **fields)


def error_event(job_id: str | None, error: EngineError) -> dict[str, Any]:
    fields: dict[str, Any] = {"job_id": job_id, "code": error.code, "message": error.message}
    if error.field is not None:
        fields["field"] = error.field
    return _event("error", **fields)


def health_event(
    request_id: str | None, state: str, job_id: str | None, queued: int, device: str, uptime_s: float
) -> dict[str, Any]:
    return _event(
        "health",
        request_id=request_id,
        state=state,
        job_id=job_id,
        queued=queued,
        device=device,
        uptime_s=round(uptime_s, 1),
    )

"""The golden examples in docs/protocol/examples are the contract both sides test against."""

import copy
import json
import re
from dataclasses import MISSING, fields
from pathlib import Path
from typing import get_args

import pytest

from kontext_engine import protocol as p
from kontext_engine.editor import EditRequest
from kontext_engine.errors import EngineError, ErrorCode
from kontext_engine.lora import LoraSpec
from kontext_engine.resolution import ASPECT_RATIOS, MAX_INPUT_SIDE

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "examples"


def load(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def test_every_message_to_the_engine_parses() -> None:
    job = p.parse((EXAMPLES / "to_engine/job.json").read_text())
    assert isinstance(job, p.Job)
    assert job.input == p.JobInput("/var/lib/kontext/inputs/3f/3f2a.rgb", 800, 600)
    assert (job.seeds, job.params["guidance"], job.preview, job.params["aspect_ratio"]) == (
        (42,),
        2.5,
        True,
        "match_input_image",
    )
    two = p.parse((EXAMPLES / "to_engine/job_two_generations.json").read_text())
    assert (
        isinstance(two, p.Job) and two.seeds == (1, 2) and two.preview is False and two.params["disable_safety_checker"]
    )
    assert two.params["fast"] and not job.params["fast"]
    assert (job.params["negative_prompt"], job.params["true_cfg_scale"], job.params["loras"]) == (None, 1.0, ())
    full = p.parse((EXAMPLES / "to_engine/job_negative_prompt_loras.json").read_text())
    assert isinstance(full, p.Job)
    assert full.params["negative_prompt"] == "blurry" and full.params["true_cfg_scale"] == 2.5
    assert (full.params["strength"], full.params["reference_method"]) == (0.8, "index")
    assert full.params["loras"] == (LoraSpec("styles/ghibli", 0.75), LoraSpec("detail", 1.0))
    assert (job.params["output_resolution"], job.params["preserve_unedited"]) == ("bucket", None)
    at_input = p.parse((EXAMPLES / "to_engine/job_output_resolution_input.json").read_text())
    assert isinstance(at_input, p.Job)
    assert (at_input.params["output_resolution"], at_input.params["preserve_unedited"]) == ("input", True)
    text_to_image = p.parse((EXAMPLES / "to_engine/job_text_to_image.json").read_text())
    assert isinstance(text_to_image, p.Job) and text_to_image.input is None
    assert (text_to_image.params["aspect_ratio"], text_to_image.seeds) == ("16:9", (7,))
    assert (job.references, job.mask) == ((), None)
    multi = p.parse((EXAMPLES / "to_engine/job_references_mask.json").read_text())
    assert isinstance(multi, p.Job)
    assert [(r.path.rsplit("/", 1)[1], r.width, r.height) for r in multi.references] == [
        ("input_image_2.rgb", 512, 512),
        ("input_image_3.rgb", 640, 360),
    ]
    assert multi.mask == p.JobInput("/var/lib/kontext/tmp/gen_04/mask_image.grey", 800, 600)
    assert p.parse((EXAMPLES / "to_engine/cancel.json").read_text()) == p.Cancel("gen_01")
    assert p.parse((EXAMPLES / "to_engine/health.json").read_text()) == p.Health("h1")
    assert p.parse((EXAMPLES / "to_engine/shutdown.json").read_text()) == p.Shutdown()


def test_events_the_engine_builds_match_the_golden_examples() -> None:
    ready = load("from_engine/ready.json")
    built = p.ready_event(ready["model"], "cuda:0", "bfloat16", True, "fp8", True)
    assert built == {**ready, "pid": built["pid"]}
    assert p.fatal_event("load_failed", load("from_engine/fatal.json")["message"]) == load("from_engine/fatal.json")
    assert p.started_event("gen_01", 1184, 880, (42,)) == load("from_engine/started.json")
    assert p.progress_event("gen_01", 1, 28) == load("from_engine/progress.json")
    with_preview = load("from_engine/progress_with_preview.json")
    assert p.progress_event("gen_01", 2, 28, with_preview["preview"]) == with_preview
    result = load("from_engine/result.json")
    assert p.result_event("gen_01", result["images"], result["timings_ms"], result["cache"]) == result
    for name in ("error_cancelled", "error_content_flagged", "error_invalid_request"):
        golden = load(f"from_engine/{name}.json")
        err = EngineError(golden["code"], golden["message"], golden.get("field"))
        assert p.error_event(golden["job_id"], err) == golden
    health = load("from_engine/health.json")
    assert p.health_event("h1", "busy", "gen_01", 0, "cuda:0", 73.2) == health


def test_the_optional_environment_prompt_tokens_and_loras_match_their_golden_examples() -> None:
    ready = load("from_engine/ready_with_environment.json")
    built = p.ready_event(ready["model"], "cuda:0", "bfloat16", True, "fp8", True, ready["environment"])
    assert built == {**ready, "pid": built["pid"]}
    result = load("from_engine/result_with_prompt_tokens.json")
    built = p.result_event("gen_01", result["images"], result["timings_ms"], result["cache"], result["prompt_tokens"])
    assert built == result
    full = load("from_engine/result_full_resolution.json")
    assert p.result_event("gen_03", full["images"], full["timings_ms"], full["cache"]) == full
    loras = load("from_engine/result_with_loras.json")
    built = p.result_event("gen_04", loras["images"], loras["timings_ms"], loras["cache"], None, loras["loras"])
    assert built == loras


def test_encoded_events_are_single_json_lines() -> None:
    line = p.encode(p.progress_event("j", 1, 2))
    assert line.endswith("\n") and "\n" not in line[:-1]
    assert json.loads(line) == {"v": 1, "type": "progress", "job_id": "j", "step": 1, "total_steps": 2}


CASES = json.loads((EXAMPLES / "refused/cases.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_refused_messages_get_the_documented_error(case: dict) -> None:
    with pytest.raises(p.ProtocolError) as err:
        p.parse(case["line"])
    expected = case["error"]
    assert err.value.code == expected["code"]
    assert err.value.job_id == expected["job_id"]
    if "field" in expected:
        assert err.value.field == expected["field"]
        assert expected["field"] in err.value.message  # the message names the field too


def test_an_overlong_line_is_malformed() -> None:
    with pytest.raises(p.ProtocolError) as err:
        p.parse(b" " * (p.MAX_LINE_BYTES + 1))
    assert err.value.code == "malformed_message"


def test_a_mask_must_be_at_the_input_size_and_references_are_at_most_three() -> None:
    multi = load("to_engine/job_references_mask.json")
    with pytest.raises(p.ProtocolError) as e:
        p.parse(json.dumps({**multi, "mask": {**multi["mask"], "width": 799}}))
    assert (e.value.code, e.value.field) == ("invalid_request", "mask")
    with pytest.raises(p.ProtocolError) as e:
        p.parse(json.dumps({**multi, "references": multi["references"] * 2}))
    assert (e.value.code, e.value.field) == ("invalid_request", "references")
    with pytest.raises(p.ProtocolError) as e:
        p.parse(json.dumps({**multi, "references": [{**multi["references"][0], "width": 0}]}))
    assert (e.value.code, e.value.field) == ("invalid_request", "references[0].width")


def test_booleans_are_not_integers() -> None:
    job = load("to_engine/job.json")
    with pytest.raises(p.ProtocolError) as err:
        p.parse(json.dumps({**job, "num_inference_steps": True}))
    assert err.value.field == "num_inference_steps"


# ---- docs/protocol/protocol.schema.json: the one definition both sides are checked against

SCHEMA = json.loads((EXAMPLES.parent / "protocol.schema.json").read_text())
_ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "default", "contentEncoding"}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def problems(value: object, schema: dict, root: dict = SCHEMA, at: str = "") -> list[str]:
    """The subset of JSON Schema 2020-12 the protocol schema uses; an unknown keyword is an error."""
    out: list[str] = []
    for key, rule in schema.items():
        where = at or "message"
        if key in _ANNOTATIONS or (key == "additionalProperties" and rule is not False):
            continue
        if key == "$ref":
            out += problems(value, root["$defs"][rule.removeprefix("#/$defs/")], root, at)
        elif key == "type":
            if not any(_TYPES[t](value) for t in ([rule] if isinstance(rule, str) else rule)):
                out.append(f"{where} must be {rule}")
        elif (key == "const" and value != rule) or (key == "enum" and value not in rule):
            out.append(f"{where} must be {rule}")
        elif key in ("anyOf", "oneOf"):
            n = sum(not problems(value, s, root, at) for s in rule)
            if n == 0 or (key == "oneOf" and n > 1):
                out.append(f"{where} matches {n} of its {key}")
        elif key in ("const", "enum"):
            pass
        elif not isinstance(value, dict | list | str | int | float) or isinstance(value, bool):
            pass  # the keywords below apply to other types; `type` says what is wrong
        elif key == "required" and isinstance(value, dict):
            out += [f"{at + '.' if at else ''}{k} is missing" for k in rule if k not in value]
        elif key == "properties" and isinstance(value, dict):
            for k, sub in rule.items():
                if k in value:
                    out += problems(value[k], sub, root, f"{at + '.' if at else ''}{k}")
        elif key == "additionalProperties" and isinstance(value, dict):
            out += [
                f"unknown field {at + '.' if at else ''}{k}" for k in value if k not in schema.get("properties", {})
            ]
        elif key == "items" and isinstance(value, list):
            for i, item in enumerate(value):
                out += problems(item, rule, root, f"{at}[{i}]")
        elif key in ("minItems", "maxItems", "minLength", "maxLength"):
            if isinstance(value, list | str) and not (
                len(value) >= rule if key.startswith("min") else len(value) <= rule
            ):
                out.append(f"{where} {key} {rule}")
        elif key in ("minimum", "maximum"):
            if isinstance(value, int | float) and not (value >= rule if key == "minimum" else value <= rule):
                out.append(f"{where} {key} {rule}")
        elif key == "exclusiveMinimum":
            if isinstance(value, int | float) and not value > rule:
                out.append(f"{where} {key} {rule}")
        elif key == "pattern":
            if isinstance(value, str) and not re.search(rule, value):
                out.append(f"{where} must match {rule}")
        elif key not in ("required", "properties", "additionalProperties", "items"):
            raise AssertionError(f"the protocol schema uses {key}, which this check does not know")
    return out


def to_engine(m: object) -> list[str]:
    return problems(m, {"$ref": "#/$defs/to_engine"})


def from_engine(m: object) -> list[str]:
    return problems(m, {"$ref": "#/$defs/from_engine"})


def built_events() -> list[dict]:
    """One of each event, built by the engine's builders with every optional field."""
    ready = load("from_engine/ready_with_environment.json")
    result = load("from_engine/result_with_prompt_tokens.json")
    full = load("from_engine/result_full_resolution.json")  # output_resolution input
    loras = load("from_engine/result_with_loras.json")
    refs = load("from_engine/result_with_references.json")  # input_image_2..4: a cache hit each
    return [
        p.ready_event(ready["model"], "cuda:0", "bfloat16", True, "fp8", True),
        p.ready_event(ready["model"], "cuda:0", "bfloat16", True, "fp8", True, ready["environment"]),
        p.fatal_event("device_unavailable", "no CUDA"),
        p.started_event("gen_01", 1184, 880, (42, 43)),
        p.progress_event("gen_01", 1, 28),
        p.progress_event("gen_01", 2, 28, load("from_engine/progress_with_preview.json")["preview"]),
        p.result_event("gen_01", result["images"], result["timings_ms"], result["cache"], result["prompt_tokens"]),
        p.result_event("gen_03", full["images"], full["timings_ms"], full["cache"]),
        p.result_event("gen_04", loras["images"], loras["timings_ms"], loras["cache"], None, loras["loras"]),
        p.result_event("gen_05", refs["images"], refs["timings_ms"], refs["cache"]),
        p.error_event("gen_01", EngineError("invalid_request", "bad", "input.width")),
        p.error_event(None, EngineError("malformed_message", "bad json")),
        p.health_event(None, "idle", None, 0, "cpu", 1.23),
    ]


def fields_of(schema: dict, root: dict = SCHEMA, at: str = "") -> set[str]:
    """Every field path a schema names: `input.width`, `images[].seed`, ..."""
    if "$ref" in schema:
        return fields_of(root["$defs"][schema["$ref"].removeprefix("#/$defs/")], root, at)
    out: set[str] = set()
    for k, sub in schema.get("properties", {}).items():
        out.add(at + k)
        out |= fields_of(sub, root, f"{at}{k}.")
    if "items" in schema:
        out |= fields_of(schema["items"], root, at[:-1] + "[].")
    return out


def fields_in(value: object, at: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out |= {at + k} | fields_in(v, f"{at}{k}.")
    elif isinstance(value, list):
        for v in value:
            out |= fields_in(v, at[:-1] + "[].")
    return out


def python_drift(schema: dict) -> list[str]:
    """What the Python side does not know of the schema, or knows that the schema does not."""
    out: list[str] = []
    defs = schema["$defs"]

    def same(what: str, python: set, schema_side: set) -> None:
        if python != schema_side:
            out.append(
                f"{what}: only in Python {sorted(python - schema_side)}, only in the schema {sorted(schema_side - python)}"
            )

    job = defs["job"]
    same("job fields", set(p._JOB_FIELDS), set(job["properties"]))
    same(
        "Job dataclass and PARAMS",
        ({f.name for f in fields(p.Job)} - {"params"}) | set(p.PARAMS) | {"v", "type"},
        set(job["properties"]),
    )
    # every request parameter is an EditRequest field: the job's params are its keyword arguments
    same("PARAMS in EditRequest", set(p.PARAMS) - {f.name for f in fields(EditRequest)}, set())
    same("JobInput dataclass", {f.name for f in fields(p.JobInput)}, set(job["properties"]["input"]["properties"]))
    same("Cancel dataclass", {f.name for f in fields(p.Cancel)} | {"v", "type"}, set(defs["cancel"]["properties"]))
    hr = defs["health_request"]["properties"]
    same("Health dataclass", {f.name for f in fields(p.Health)} | {"v", "type"}, set(hr))
    required = {f.name for f in fields(p.Job) if f.default is MISSING} - {"params"}
    required |= {name for name, param in p.PARAMS.items() if param.required}
    same("job required", required | {"v", "type"}, set(job["required"]))
    same("aspect ratios", set(ASPECT_RATIOS), set(job["properties"]["aspect_ratio"]["enum"]))
    same("error codes", set(get_args(ErrorCode)), set(defs["error"]["properties"]["code"]["enum"]))
    jp = job["properties"]
    limits = {
        "num_inference_steps": (jp["num_inference_steps"]["maximum"], p.MAX_STEPS),
        "guidance": (jp["guidance"]["maximum"], p.MAX_GUIDANCE),
        "seeds": (jp["seeds"]["maxItems"], p.MAX_GENERATIONS),
        "seed": (jp["seeds"]["items"]["maximum"], p.MAX_SEED),
        "prompt": (jp["prompt"]["maxLength"], p.MAX_PROMPT_CHARS),
        "input.width": (jp["input"]["properties"]["width"]["maximum"], MAX_INPUT_SIDE),
        "true_cfg_scale": (jp["true_cfg_scale"]["maximum"], p.MAX_TRUE_CFG),
        "loras": (jp["loras"]["maxItems"], p.MAX_LORAS),
        "loras[].scale": (jp["loras"]["items"]["properties"]["scale"]["maximum"], p.MAX_LORA_SCALE),
        "loras[].name": (jp["loras"]["items"]["properties"]["name"]["maxLength"], p.MAX_LORA_NAME),
        "reference_method": (jp["reference_method"]["enum"], list(p.REFERENCE_METHODS)),
    }
    out += [f"{k} limit: schema {s}, Python {py}" for k, (s, py) in limits.items() if s != py]
    # every field of every engine → gateway message is one the builders write, and no other
    for kind in ("ready", "fatal", "started", "progress", "result", "error", "health"):
        built = set().union(*(fields_in(e) for e in built_events() if e["type"] == kind))
        same(f"{kind} event fields", built, fields_of(defs[kind]))
        for e in (e for e in built_events() if e["type"] == kind):
            out += [f"{kind}: {x}" for x in problems(e, defs[kind], schema)]
    return out


def test_every_golden_example_is_valid_against_the_schema() -> None:
    for f in sorted((EXAMPLES / "to_engine").glob("*.json")):
        assert to_engine(json.loads(f.read_text())) == [], f.name
    for f in sorted((EXAMPLES / "from_engine").glob("*.json")):
        assert from_engine(json.loads(f.read_text())) == [], f.name


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_the_schema_refuses_what_the_engine_refuses(case: dict) -> None:
    try:
        m = json.loads(case["line"], parse_constant=lambda c: float(c))
    except ValueError:
        return  # not JSON at all
    assert to_engine(m) != []


def test_the_python_side_matches_the_schema() -> None:
    assert python_drift(SCHEMA) == []


def test_a_planted_schema_change_is_python_drift() -> None:
    planted = copy.deepcopy(SCHEMA)
    planted["$defs"]["job"]["properties"]["sharpness"] = {"type": "number"}
    planted["$defs"]["job"]["required"].append("sharpness")
    planted["$defs"]["progress"]["properties"]["eta_s"] = {"type": "number"}
    planted["$defs"]["progress"]["required"].append("eta_s")
    planted["$defs"]["job"]["properties"]["num_inference_steps"]["maximum"] = 100
    drift = python_drift(planted)
    assert "job fields: only in Python [], only in the schema ['sharpness']" in drift
    assert "job required: only in Python [], only in the schema ['sharpness']" in drift
    assert "progress event fields: only in Python [], only in the schema ['eta_s']" in drift
    assert "progress: eta_s is missing" in drift
    assert "num_inference_steps limit: schema 100, Python 50" in drift


def test_the_schema_check_refuses_nested_mistakes() -> None:
    result = load("from_engine/result.json")
    result["images"][0]["seed"] = "42"
    del result["cache"]["condition"]
    result["timings_ms"]["upload"] = 1
    assert sorted(problems(result, SCHEMA["$defs"]["result"])) == [
        "cache.condition is missing",
        "images[0].seed must be integer",
        "unknown field timings_ms.upload",
    ]

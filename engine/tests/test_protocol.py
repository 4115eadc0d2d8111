"""The golden examples in docs/protocol/examples are the contract both sides test against."""

import json
from pathlib import Path

import pytest

from kontext_engine import protocol as p
from kontext_engine.errors import EngineError

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "examples"


def load(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def test_every_message_to_the_engine_parses() -> None:
    job = p.parse((EXAMPLES / "to_engine/job.json").read_text())
    assert isinstance(job, p.Job)
    assert job.input == p.JobInput("/var/lib/kontext/inputs/3f/3f2a.rgb", 800, 600)
    assert (job.seeds, job.guidance, job.preview, job.aspect_ratio) == ((42,), 2.5, True, "match_input_image")
    two = p.parse((EXAMPLES / "to_engine/job_two_generations.json").read_text())
    assert isinstance(two, p.Job) and two.seeds == (1, 2) and two.preview is False and two.disable_safety_checker
    assert two.fast and not job.fast
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


def test_the_optional_environment_and_prompt_tokens_match_their_golden_examples() -> None:
    ready = load("from_engine/ready_with_environment.json")
    built = p.ready_event(ready["model"], "cuda:0", "bfloat16", True, "fp8", True, ready["environment"])
    assert built == {**ready, "pid": built["pid"]}
    result = load("from_engine/result_with_prompt_tokens.json")
    built = p.result_event("gen_01", result["images"], result["timings_ms"], result["cache"], result["prompt_tokens"])
    assert built == result


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


def test_booleans_are_not_integers() -> None:
    job = load("to_engine/job.json")
    with pytest.raises(p.ProtocolError) as err:
        p.parse(json.dumps({**job, "num_inference_steps": True}))
    assert err.value.field == "num_inference_steps"

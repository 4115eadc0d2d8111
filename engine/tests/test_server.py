"""The engine as the gateway sees it: a process speaking the protocol on stdin and fd 3."""

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from .conftest import photo

ENGINE_DIR = Path(__file__).resolve().parents[1]


class EngineProcess:
    def __init__(self, *args: str):
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kontext_engine", "serve", "--device", "cpu", "--events-fd", str(write_fd), *args],
            cwd=ENGINE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,  # must stay quiet: logs go to stderr
            stderr=subprocess.DEVNULL,
            pass_fds=(write_fd,),
        )
        os.close(write_fd)
        self.events: queue.Queue[dict] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(os.fdopen(read_fd),), daemon=True)
        self._reader.start()

    def _read(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self.events.put(json.loads(line))

    def send(self, message: dict | str) -> None:
        assert self.proc.stdin is not None
        line = message if isinstance(message, str) else json.dumps(message)
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def next(self, timeout: float = 60) -> dict:
        return self.events.get(timeout=timeout)

    def until(self, kind: str, timeout: float = 120) -> list[dict]:
        seen = []
        while True:
            seen.append(self.next(timeout))
            if seen[-1]["type"] == kind:
                return seen


@pytest.fixture(scope="module")
def engine(tiny_dir: Path) -> Iterator[EngineProcess]:
    e = EngineProcess("--model-dir", str(tiny_dir))
    ready = e.next(timeout=120)
    assert ready["type"] == "ready", ready
    assert ready["model"]["demo"] is True and ready["safety_checker"] is True and ready["dtype"] == "float32"
    yield e
    if e.proc.poll() is None:
        e.proc.kill()


def job(tmp_path: Path, job_id: str, **overrides) -> dict:  # type: ignore[no-untyped-def]
    image = photo(40, 30)
    path = tmp_path / f"{job_id}.rgb"
    path.write_bytes(image.tobytes())
    return {
        "v": 1,
        "type": "job",
        "job_id": job_id,
        "input": {"path": str(path), "width": 40, "height": 30},
        "prompt": "add a red hat",
        "aspect_ratio": "1:1",
        "num_inference_steps": 2,
        "guidance": 2.5,
        "seeds": [1],
        "disable_safety_checker": False,
        "output_dir": str(tmp_path / job_id),
        **overrides,
    }


def test_a_job_streams_started_progress_and_result(engine: EngineProcess, tmp_path: Path) -> None:
    engine.send(job(tmp_path, "ok1", seeds=[1, 2], preview=True))
    events = engine.until("result")
    kinds = [e["type"] for e in events]
    assert kinds == ["started", "progress", "progress", "result"]
    assert events[0] == {"v": 1, "type": "started", "job_id": "ok1", "width": 1024, "height": 1024, "seeds": [1, 2]}
    assert [e["step"] for e in events[1:3]] == [1, 2] and events[1]["preview"]["mime"] == "image/jpeg"
    result = events[-1]
    assert [im["seed"] for im in result["images"]] == [1, 2]
    for im in result["images"]:
        assert Path(im["path"]).stat().st_size == 1024 * 1024 * 3
    assert set(result["timings_ms"]) == {"text_encode", "vae_encode", "denoise", "vae_decode", "safety", "total"}
    assert not list((tmp_path / "ok1").glob(".*tmp"))  # no temporary files left behind


def test_a_job_without_input_is_text_to_image_at_the_aspect_ratios_size(engine: EngineProcess, tmp_path: Path) -> None:
    msg = job(tmp_path, "t2i1", aspect_ratio="16:9", seeds=[4])
    del msg["input"]
    engine.send(msg)
    events = engine.until("result")
    assert [e["type"] for e in events] == ["started", "progress", "progress", "result"]
    assert (events[0]["width"], events[0]["height"]) == (1392, 752)  # 16:9's trained bucket
    image = events[-1]["images"][0]
    assert (image["width"], image["height"], image["seed"]) == (1392, 752, 4)
    assert Path(image["path"]).stat().st_size == 1392 * 752 * 3
    assert events[-1]["cache"]["condition"] is False  # no condition image was encoded
    # the same job again: the same pixels (a seed fixes a text-to-image result too)
    again = {**msg, "job_id": "t2i2", "output_dir": str(tmp_path / "t2i2")}
    engine.send(again)
    second = engine.until("result")[-1]["images"][0]
    assert Path(second["path"]).read_bytes() == Path(image["path"]).read_bytes()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"aspect_ratio": "match_input_image"}, "aspect_ratio"),
        ({"output_resolution": "input"}, "output_resolution"),
        ({"strength": 0.5}, "strength"),
    ],
)
def test_a_job_without_input_refuses_what_needs_one_before_it_starts(
    engine: EngineProcess, tmp_path: Path, overrides: dict, field: str
) -> None:
    msg = job(tmp_path, f"t2i-bad-{field}", **overrides)
    del msg["input"]
    engine.send(msg)
    err = engine.next()
    assert (err["type"], err["code"], err["field"]) == ("error", "invalid_request", field)


def test_output_resolution_input_returns_the_input_size_and_the_change_mask(
    engine: EngineProcess, tmp_path: Path
) -> None:
    image = photo(640, 480)
    path = tmp_path / "big.rgb"
    path.write_bytes(image.tobytes())
    at_input = {"input": {"path": str(path), "width": 640, "height": 480}, "aspect_ratio": "match_input_image"}
    engine.send(job(tmp_path, "full1", **at_input, output_resolution="input"))
    events = engine.until("result")
    assert events[0]["type"] == "started" and (events[0]["width"], events[0]["height"]) == (640, 480)
    result = events[-1]
    im = result["images"][0]
    assert (im["width"], im["height"]) == (640, 480)
    assert Path(im["path"]).stat().st_size == 640 * 480 * 3
    assert Path(im["mask_path"]).stat().st_size == 640 * 480
    # the tiny model's output is noise: most of the frame changes, so it is the upscaled output
    assert 0.6 < im["changed_fraction"] <= 1 and im["whole_frame"] is True
    assert result["timings_ms"]["preserve"] >= 0

    engine.send(job(tmp_path, "full2", **at_input, output_resolution="input", preserve_unedited=False))
    im = engine.until("result")[-1]["images"][0]
    assert (im["width"], im["height"]) == (640, 480) and "mask_path" not in im

    engine.send(job(tmp_path, "full3", output_resolution="input"))  # aspect_ratio 1:1
    error = engine.until("error")[-1]
    assert (error["job_id"], error["code"], error["field"]) == ("full3", "invalid_request", "aspect_ratio")


def test_references_and_a_mask_are_read_from_their_files(engine: EngineProcess, tmp_path: Path) -> None:
    def output(job_id: str, **extra) -> bytes:  # type: ignore[no-untyped-def]
        engine.send(job(tmp_path, job_id, aspect_ratio="match_input_image", **extra))
        events = engine.until("result")
        assert events[-1]["type"] == "result", events[-1]
        return Path(events[-1]["images"][0]["path"]).read_bytes()

    def raw(name: str, pixels: np.ndarray) -> dict:
        path = tmp_path / name
        path.write_bytes(pixels.tobytes())
        return {"path": str(path), "width": pixels.shape[1], "height": pixels.shape[0]}

    plain = output("plain")
    ref = raw("ref.rgb", photo(48, 32, seed=5))
    with_ref = output("ref1", references=[ref])
    assert with_ref != plain  # the reference's file was read and conditioned the edit
    assert output("ref2", references=[ref]) == with_ref  # same files, same image

    half = np.zeros((30, 40), np.uint8)
    half[:, 20:] = 255  # change the right half only
    masked = output("mask1", mask=raw("mask.grey", half))
    assert masked != plain

    wrong = raw("wrong.grey", np.zeros((30, 41), np.uint8))
    engine.send(job(tmp_path, "mask2", aspect_ratio="match_input_image", mask=wrong))
    err = engine.until("error")[-1]
    assert (err["job_id"], err["code"], err["field"]) == ("mask2", "invalid_request", "mask")
    short = {**raw("short.grey", np.zeros((30, 39), np.uint8)), "width": 40}  # 40×30 claimed, 39×30 written
    engine.send(job(tmp_path, "mask3", aspect_ratio="match_input_image", mask=short))
    err = engine.until("error")[-1]
    assert (err["code"], err["field"]) == ("invalid_request", "mask.path")
    gone = {**ref, "path": str(tmp_path / "absent.rgb")}
    engine.send(job(tmp_path, "ref3", references=[ref, gone]))
    err = engine.until("error")[-1]
    assert (err["code"], err["field"]) == ("input_missing", "references[1].path")
    assert str(tmp_path) not in err["message"]


def test_bad_messages_get_errors_and_the_engine_keeps_serving(engine: EngineProcess, tmp_path: Path) -> None:
    engine.send("{nope")
    assert engine.next()["code"] == "malformed_message"
    engine.send({"v": 1, "type": "dance"})
    assert engine.next()["code"] == "unknown_type"
    engine.send(json.dumps(job(tmp_path, "nan", guidance=float("nan"))))  # Python writes NaN, as a buggy peer might
    err = engine.next()
    assert (err["job_id"], err["code"], err["field"]) == ("nan", "invalid_request", "guidance")
    missing = job(tmp_path, "nofile")
    missing["input"]["path"] = str(tmp_path / "absent.rgb")
    engine.send(missing)
    err = engine.next()
    assert (err["code"], err["field"]) == ("input_missing", "input.path")
    assert str(tmp_path) not in err["message"]  # no server paths in what clients may see
    short = job(tmp_path, "short")
    short["input"]["width"] = 41  # the file holds 40×30 pixels
    engine.send(short)
    assert engine.next()["field"] == "input.path"
    engine.send(job(tmp_path, "after"))
    assert engine.until("result")[-1]["job_id"] == "after"


def test_health_is_answered_while_a_job_runs_and_cancel_stops_it(engine: EngineProcess, tmp_path: Path) -> None:
    engine.send(job(tmp_path, "long", num_inference_steps=50))
    assert engine.next()["type"] == "started"
    assert engine.next()["type"] == "progress"
    engine.send({"v": 1, "type": "health", "request_id": "h"})
    engine.send(job(tmp_path, "waiting"))
    engine.send(job(tmp_path, "waiting"))  # the same id again
    engine.send({"v": 1, "type": "cancel", "job_id": "waiting"})
    engine.send({"v": 1, "type": "cancel", "job_id": "long"})
    seen = [e for e in engine.until("error") if e["type"] != "progress"]
    health = next(e for e in seen if e["type"] == "health")
    assert (health["state"], health["job_id"], health["request_id"]) == ("busy", "long", "h")
    seen += [e for e in engine.until("error") if e["type"] == "error"]
    seen += [e for e in engine.until("error") if e["type"] == "error"]
    errors = {(e["job_id"], e["code"]) for e in seen if e["type"] == "error"}
    assert errors == {("waiting", "duplicate_job"), ("waiting", "cancelled"), ("long", "cancelled")}
    engine.send(job(tmp_path, "next"))
    assert engine.until("result")[-1]["job_id"] == "next"


def test_shutdown_exits_cleanly(tiny_dir: Path) -> None:
    e = EngineProcess("--model-dir", str(tiny_dir))
    assert e.next(timeout=120)["type"] == "ready"
    e.send({"v": 1, "type": "shutdown"})
    assert e.proc.wait(timeout=30) == 0
    assert e.proc.stdout is not None and e.proc.stdout.read() == b""  # nothing ever on stdout


def test_safety_on_without_a_classifier_is_a_startup_error(tiny_dir: Path, tmp_path: Path) -> None:
    e = EngineProcess("--model-dir", str(tiny_dir), "--safety-checker-dir", str(tmp_path / "none"))
    fatal = e.next(timeout=60)
    assert (fatal["type"], fatal["code"]) == ("fatal", "config_invalid")
    assert "--no-safety-checker" in fatal["message"] and "--safety-checker-dir" in fatal["message"]
    assert e.proc.wait(timeout=30) == 3


def test_an_incomplete_model_directory_is_a_startup_error_naming_the_part(tmp_path: Path) -> None:
    e = EngineProcess("--model-dir", str(tmp_path), "--no-safety-checker")
    fatal = e.next(timeout=60)
    assert (fatal["type"], fatal["code"]) == ("fatal", "load_failed")
    assert "model_index.json" in fatal["message"]
    assert e.proc.wait(timeout=30) == 3

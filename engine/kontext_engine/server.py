"""The engine process: load once, say ready, serve jobs in order over the protocol.

A reader thread takes messages from stdin (health is answered at once, cancel flags the running
job, jobs wait in a FIFO); the main thread runs one job at a time. Events go out on their own file
descriptor, never on stdout, which libraries are free to litter.
"""

import base64
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from . import conditioning, full_resolution
from . import protocol as p
from .editor import Editor, EditRequest
from .errors import EngineError

log = logging.getLogger("kontext_engine")


class EngineServer:
    def __init__(self, editor: Editor, events: TextIO, model_info: dict[str, Any]):
        self.editor = editor
        self.events = events
        self.model_info = model_info
        self.started_at = time.monotonic()
        self._write_lock = threading.Lock()
        self._state = threading.Condition()
        self._waiting: deque[p.Job] = deque()
        self._running: p.Job | None = None
        self._stop_reason: str | None = None  # set on the running job: "cancelled" or "shutting_down"
        self._stopping = False

    # -- output ------------------------------------------------------------------------------
    def send(self, event: dict[str, Any]) -> None:
        line = p.encode(event)
        with self._write_lock:
            self.events.write(line)
            self.events.flush()

    # -- input (reader thread) ---------------------------------------------------------------
    def read_forever(self, lines: Callable[[], bytes]) -> None:
        while True:
            line = lines()
            if not line:  # stdin closed: the same as shutdown
                self.handle(p.Shutdown())
                return
            if not line.strip():
                continue
            try:
                message = p.parse(line)
            except p.ProtocolError as e:
                self.send(p.error_event(e.job_id, e))
                continue
            self.handle(message)
            if isinstance(message, p.Shutdown):
                return

    def handle(self, message: p.Message) -> None:
        if isinstance(message, p.Health):
            with self._state:
                running = self._running.job_id if self._running else None
                queued = len(self._waiting)
            self.send(
                p.health_event(
                    message.request_id,
                    "busy" if running else "idle",
                    running,
                    queued,
                    str(self.editor.m.device),
                    time.monotonic() - self.started_at,
                )
            )
        elif isinstance(message, p.Job):
            with self._state:
                known = {j.job_id for j in self._waiting} | ({self._running.job_id} if self._running else set())
                refused = "shutting_down" if self._stopping else "duplicate_job" if message.job_id in known else None
                if refused is None:
                    self._waiting.append(message)
                    self._state.notify()
            if refused == "shutting_down":
                self.send(p.error_event(message.job_id, EngineError("shutting_down", "the engine is stopping")))
            elif refused == "duplicate_job":
                err = EngineError("duplicate_job", f"job {message.job_id} is already running or waiting")
                self.send(p.error_event(message.job_id, err))
        elif isinstance(message, p.Cancel):
            dropped = None
            with self._state:
                if self._running and self._running.job_id == message.job_id:
                    self._stop_reason = "cancelled"
                else:
                    dropped = next((j for j in self._waiting if j.job_id == message.job_id), None)
                    if dropped:
                        self._waiting.remove(dropped)
            if dropped:
                self.send(
                    p.error_event(
                        dropped.job_id,
                        EngineError("cancelled", f"job {dropped.job_id} was cancelled before it started"),
                    )
                )
        elif isinstance(message, p.Shutdown):
            with self._state:
                self._stopping = True
                if self._running:
                    self._stop_reason = "shutting_down"
                self._state.notify()

    # -- jobs (main thread) ------------------------------------------------------------------
    def serve_forever(self) -> None:
        while True:
            with self._state:
                while not self._waiting and not self._stopping:
                    self._state.wait()
                if self._stopping:
                    left = list(self._waiting)
                    self._waiting.clear()
                    break
                job = self._waiting.popleft()
                self._running, self._stop_reason = job, None
            try:
                self.run(job)
            finally:
                with self._state:
                    self._running = None
        for job in left:
            self.send(
                p.error_event(job.job_id, EngineError("shutting_down", "the engine stopped before this job started"))
            )

    def run(self, job: p.Job) -> None:
        try:
            image = read_rgb(job.input) if job.input is not None else None  # None: text-to-image
            references = tuple(
                read_rgb(r, f"input_image_{k + 2}", f"references[{k}].path") for k, r in enumerate(job.references)
            )
            mask = read_grey(job.mask) if job.mask is not None else None
            req = EditRequest(image, seeds=job.seeds, references=references, mask=mask, **job.params)
            full_resolution.check(req)
            width, height = conditioning.target_size(req)  # refuses match_input_image without an input
            if full_resolution.wanted(req) and job.input is not None:
                width, height = job.input.width, job.input.height
            self.send(p.started_event(job.job_id, width, height, job.seeds))

            def on_step(step: int, total: int, preview: Callable[[], tuple[bytes, int, int]]) -> None:
                reason = self._stop_reason
                if reason == "cancelled":
                    raise EngineError("cancelled", f"job {job.job_id} was cancelled at step {step} of {total}")
                if reason == "shutting_down":
                    raise EngineError("shutting_down", f"the engine stopped job {job.job_id} at step {step} of {total}")
                shown = None
                if job.preview:
                    data, w, h = preview()
                    shown = {
                        "mime": "image/jpeg",
                        "width": w,
                        "height": h,
                        "data": base64.b64encode(data).decode(),
                    }
                self.send(p.progress_event(job.job_id, step, total, shown))

            result = self.editor.edit(req, on_step)
            outputs, timings = result.images, result.timings_ms
            fields = [{"width": result.width, "height": result.height} for _ in outputs]
            if full_resolution.wanted(req):  # each output at the input's own size
                outputs, fields, ms = full_resolution.put_back(
                    req, outputs, Path(job.output_dir), self.editor.max_condition_tokens, self.editor.resized
                )
                timings = {**timings, "preserve": ms, "total": round(timings["total"] + ms, 1)}
            paths = write_outputs(Path(job.output_dir), outputs)
            images = [
                {"path": str(path), **f, "seed": seed} for path, f, seed in zip(paths, fields, job.seeds, strict=True)
            ]
            self.send(p.result_event(job.job_id, images, timings, result.cache, result.prompt_tokens, result.loras))
        except EngineError as e:
            self.send(p.error_event(job.job_id, e))
        except Exception as e:  # a bug or out of memory: report it, keep serving
            log.exception("job %s failed", job.job_id)
            if isinstance(e, torch.OutOfMemoryError) and torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.send(p.error_event(job.job_id, EngineError("internal", f"{type(e).__name__}: {e}")))


def _read_raw(spec: p.JobInput, channels: int, what: str, field: str) -> np.ndarray:
    """A raw 8-bit file of exactly width × height × channels bytes, as (height, width[, channels])."""
    expected = spec.width * spec.height * channels
    try:
        data = Path(spec.path).read_bytes()
    except OSError as e:
        # The path is the server's business: the log has it, the message names only the file.
        log.warning("cannot read input file %s: %s", spec.path, e.strerror)
        raise EngineError(
            "input_missing", f"cannot read the {what} {Path(spec.path).name}: {e.strerror}", field
        ) from None
    if len(data) != expected:
        kind = "raw RGB" if channels == 3 else "raw grey"
        raise EngineError(
            "invalid_request",
            f"{what} file {Path(spec.path).name} has {len(data)} bytes; {kind} of {spec.width}×{spec.height} needs {expected}",
            field,
        )
    shape = (spec.height, spec.width, channels) if channels > 1 else (spec.height, spec.width)
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def read_rgb(spec: p.JobInput, what: str = "input image", field: str = "input.path") -> np.ndarray:
    """The input file (or a reference's, `what` naming it): raw RGB8, exactly width × height × 3 bytes."""
    return _read_raw(spec, 3, what, field)


def read_grey(spec: p.JobInput) -> np.ndarray:
    """The mask file: raw 8-bit grey, exactly width × height bytes (255 = change, 0 = keep)."""
    return _read_raw(spec, 1, "mask", "mask.path")


def write_outputs(directory: Path, images: list[np.ndarray]) -> list[Path]:
    """One raw RGB file per generation, each written under a temporary name then renamed."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(images):
        final = directory / f"{i}.rgb"
        tmp = directory / f".{i}.rgb.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(np.ascontiguousarray(image).data)  # the array's own buffer: no 3 MB copy
        os.replace(tmp, final)
        paths.append(final)
    return paths

"""The device decision (no silent CPU fallback with real weights), the environment report, the
compile and warm-up defaults, the attention kernel and the prompt token counts."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from kontext_engine import environment as env
from kontext_engine.configs import PRESETS
from kontext_engine.editor import Editor
from kontext_engine.speed import attention_backend, resolve_compile, warmup_buckets

from .test_server import EngineProcess, job

NO_DRIVER = env.CudaFacts("2.15.0+cu132", "13.2", False, 0, "Found no NVIDIA driver on your system.", None)
OLD_DRIVER = env.CudaFacts(
    "2.15.0+cu132",
    "13.2",
    False,
    0,
    "The NVIDIA driver on your system is too old (found version 12040).",
    "550.54.15",
)
CPU_BUILD = env.CudaFacts("2.15.0+cpu", None, False, 0, None, None)
TWO_GPUS = env.CudaFacts("2.15.0+cu132", "13.2", True, 2, None, "580.65.06")


def test_real_weights_without_cuda_refuse_to_start_and_say_why() -> None:
    with pytest.raises(env.DeviceUnavailable) as err:
        env.choose_device("auto", "dev", OLD_DRIVER)
    message = str(err.value)
    for fact in (
        "CUDA 13.2 build",
        "driver ≥ 580",
        "driver 550.54.15",
        "too old (found version 12040)",
        "2.15.0+cu132",
    ):
        assert fact in message, fact
    assert "KONTEXT_PYTHON" in message and "--device cpu" in message
    with pytest.raises(env.DeviceUnavailable, match="no NVIDIA driver was found"):
        env.choose_device("auto", "custom", NO_DRIVER)
    with pytest.raises(env.DeviceUnavailable, match="CPU-only build"):
        env.choose_device("auto", "dev", CPU_BUILD)
    with pytest.raises(env.DeviceUnavailable, match="cuda:1 asked for"):
        env.choose_device("cuda:1", "tiny", NO_DRIVER)


def test_the_cpu_is_used_for_the_tiny_model_or_when_asked_for() -> None:
    assert env.choose_device("auto", "tiny", NO_DRIVER) == torch.device("cpu")
    assert env.choose_device("cpu", "dev", OLD_DRIVER) == torch.device("cpu")  # explicit: honoured
    assert env.choose_device("auto", "dev", TWO_GPUS) == torch.device("cuda", 0)
    assert env.choose_device("cuda:1", "dev", TWO_GPUS) == torch.device("cuda", 1)
    with pytest.raises(env.DeviceUnavailable, match="sees 2 GPU"):
        env.choose_device("cuda:2", "dev", TWO_GPUS)
    with pytest.raises(env.DeviceUnavailable, match="not a device"):
        env.choose_device("gpu0", "dev", TWO_GPUS)


def dev_looking(tiny_dir: Path, tmp_path: Path) -> Path:
    """The tiny model directory with a transformer config that says it is the 12 B dev model."""
    out = tmp_path / "dev"
    shutil.copytree(tiny_dir, out)
    config = json.loads((out / "transformer" / "config.json").read_text())
    (out / "transformer" / "config.json").write_text(json.dumps({**config, **PRESETS["dev"].transformer}))
    return out


def test_the_variant_is_read_from_the_config_before_loading(tiny_dir: Path, tmp_path: Path) -> None:
    assert env.model_variant(tiny_dir) == "tiny"
    assert env.model_variant(dev_looking(tiny_dir, tmp_path)) == "dev"
    assert env.model_variant(tmp_path / "only-a-single-file") == "dev"  # no transformer/config.json


def test_the_engine_exits_with_a_fatal_naming_the_cuda_build(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # no GPU seen: the same on a machine with GPUs
    e = EngineProcess("--device", "auto", "--model-dir", str(dev_looking(tiny_dir, tmp_path)))
    fatal = e.next(timeout=120)
    assert fatal["type"] == "fatal" and fatal["code"] == "device_unavailable", fatal
    assert f"torch {torch.__version__}" in fatal["message"]
    assert (torch.version.cuda or "CPU-only") in fatal["message"]
    assert e.proc.wait(timeout=30) == 3


def test_ready_reports_the_environment_and_results_the_prompt_tokens(
    tiny_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    e = EngineProcess("--device", "auto", "--model-dir", str(tiny_dir))  # tiny: auto may pick the CPU
    try:
        ready = e.next(timeout=120)
        assert ready["type"] == "ready" and ready["device"] == "cpu" and ready["compiled"] is False, ready
        environment = ready["environment"]
        assert environment["torch"] == torch.__version__ and environment["cuda"] == torch.version.cuda
        assert environment["gpu"] is None and environment["attention"]
        long = job(tmp_path, "long", prompt="make the sky purple and add a full moon " * 80)
        e.send(long)
        result = e.until("result")[-1]
        tokens = result["prompt_tokens"]
        assert tokens["truncated"] is True and tokens["t5"] > tokens["t5_max"] == 512 and tokens["clip_max"] == 77
    finally:
        e.send({"v": 1, "type": "shutdown"})
        e.proc.wait(timeout=60)


def test_prompt_token_counts(editor: Editor) -> None:
    short = editor.prompt_tokens("make the sky purple")
    assert short["truncated"] is False and 1 < short["t5"] < 20 and 1 < short["clip"] < 20
    assert (short["t5_max"], short["clip_max"]) == (512, 77)
    assert editor.prompt_tokens("purple " * 600)["truncated"] is True


def test_compilation_is_on_by_default_with_cuda_only() -> None:
    cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert resolve_compile("auto", cuda) is True and resolve_compile("auto", cpu) is False
    assert resolve_compile("on", cpu) is True and resolve_compile("off", cuda) is False
    assert resolve_compile(True, cpu) is True  # the old boolean still works
    with pytest.raises(ValueError):
        resolve_compile("sometimes", cpu)
    assert warmup_buckets("auto", compiled=True) == [(1024, 1024)]
    assert warmup_buckets("auto", compiled=False) == []
    assert warmup_buckets("1392x752", compiled=False) == [(1392, 752)]


def test_the_attention_kernel_is_named() -> None:
    name = attention_backend(torch.device("cpu"), torch.float32, 2, 16, 8704)
    assert name in ("flash", "math", "efficient"), name

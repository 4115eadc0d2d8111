"""What the engine runs on (torch, its CUDA build, the NVIDIA driver, the GPU) and the device it
may use: with real weights and no usable CUDA it refuses to start, instead of loading 12 B
parameters in float32 on the CPU and taking an hour an image.

Every function works on any torch build (CPU-only, CUDA 11–13) and never raises for a missing
driver, library or private API: a fact it cannot learn is None.
"""

import ctypes
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .configs import preset_matching

log = logging.getLogger("kontext_engine")

# The oldest NVIDIA driver (Linux) each CUDA major release runs on (NVIDIA's compatibility table:
# a CUDA 13.x build needs ≥ 580, 12.x ≥ 525.60.13 with minor-version compatibility, 11.x ≥ 450.80.02).
DRIVER_FLOOR = {13: "580", 12: "525.60.13", 11: "450.80.02"}


class DeviceUnavailable(Exception):
    """The requested or needed device cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class CudaFacts:
    torch_version: str
    cuda_build: str | None  # torch.version.cuda: None for a CPU-only build
    available: bool
    device_count: int
    error: str | None  # what torch said when CUDA would not start
    driver: str | None  # the NVIDIA driver release, e.g. 550.54.15, when it can be read


def driver_version() -> str | None:
    """The NVIDIA kernel driver's release (e.g. 550.54.15), from /proc or NVML; None if unknown.
    nvidia-smi is not needed (it is often absent in containers)."""
    try:
        text = Path("/proc/driver/nvidia/version").read_text()
        for word in text.split():
            parts = word.split(".")
            if len(parts) >= 2 and all(p.isdigit() for p in parts):
                return word
    except OSError:
        pass
    try:  # NVML ships with the driver (libnvidia-ml); works where /proc is hidden
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
        if nvml.nvmlInit_v2() == 0:
            buf = ctypes.create_string_buffer(96)
            ok = nvml.nvmlSystemGetDriverVersion(buf, 96) == 0
            nvml.nvmlShutdown()
            if ok:
                return buf.value.decode()
    except (OSError, AttributeError):
        pass
    return None


def driver_cuda_version() -> str | None:
    """The newest CUDA version the installed driver supports (cuDriverGetVersion), e.g. "12.4"."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
        v = ctypes.c_int(0)
        if cuda.cuDriverGetVersion(ctypes.byref(v)) == 0 and v.value > 0:
            return f"{v.value // 1000}.{(v.value % 1000) // 10}"
    except (OSError, AttributeError):
        pass
    return None


def cuda_facts() -> CudaFacts:
    """Ask torch whether CUDA works, and if not, what it said."""
    build = torch.version.cuda
    available = False
    count = 0
    error = None
    try:
        available = torch.cuda.is_available()
        count = torch.cuda.device_count() if available else 0
    except Exception as e:  # a broken install can raise here
        error = f"{type(e).__name__}: {e}"
    if not available and error is None:
        if build is None:
            error = "this torch is a CPU-only build"
        else:
            try:
                torch.cuda.init()  # raises with the reason: no driver, driver too old, no device
                error = "torch.cuda.is_available() is False"
            except Exception as e:
                error = str(e).strip() or type(e).__name__
    return CudaFacts(torch.__version__, build, available, count, error, driver_version())


def model_variant(model_dir: Path) -> str:
    """`dev`, `tiny` or `custom`, from the transformer config, read before anything is loaded.
    A directory without transformer/config.json (BFL's single file) is the dev model."""
    path = model_dir / "transformer" / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return "dev" if not path.exists() else "custom"
    return preset_matching(config) if isinstance(config, dict) else "custom"


def _index(device: str) -> int | None:
    _, _, n = device.partition(":")
    return int(n) if n.isdigit() else None


def no_cuda_message(facts: CudaFacts, variant: str) -> str:
    """Why CUDA is not usable here, what it costs, and the ways out."""
    if facts.cuda_build is None:
        cause = f"torch {facts.torch_version} is a CPU-only build (no CUDA)"
    else:
        major = int(facts.cuda_build.split(".")[0]) if facts.cuda_build.split(".")[0].isdigit() else 0
        floor = DRIVER_FLOOR.get(major)
        need = f", which needs an NVIDIA driver ≥ {floor}" if floor else ""
        found = f"this machine has driver {facts.driver}" if facts.driver else "no NVIDIA driver was found"
        supports = driver_cuda_version() if facts.driver else None
        if supports:
            found += f" (supports CUDA up to {supports})"
        cause = f"torch {facts.torch_version} is a CUDA {facts.cuda_build} build{need}; {found}"
    said = f"; torch said: {facts.error}" if facts.error else ""
    size = "FLUX.1 Kontext [dev] (12 B parameters)" if variant == "dev" else "this model"
    return (
        f"no usable CUDA GPU: {cause}{said}. Running {size} on the CPU would take about an hour an "
        "image, so the engine does not start. Update the NVIDIA driver, or run the engine with a "
        "Python environment whose torch matches the driver (KONTEXT_PYTHON; README, Engine), or "
        "choose the CPU on purpose with --device cpu (KONTEXT_DEVICES=cpu)"
    )


def choose_device(requested: str, variant: str, facts: CudaFacts) -> torch.device:
    """The device to load on. `auto`: CUDA when it works; the CPU only for the tiny model. An
    explicit `cpu` is honoured (slow with real weights); an explicit `cuda[:N]` must exist."""
    if requested == "cpu":
        if variant != "tiny":
            log.warning("running the %s model on the CPU because --device cpu was set: expect hours an image", variant)
        return torch.device("cpu")
    if requested == "auto":
        if facts.available:
            return torch.device("cuda", 0)
        if variant == "tiny":
            return torch.device("cpu")
        raise DeviceUnavailable(no_cuda_message(facts, variant))
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError):
        raise DeviceUnavailable(f"--device {requested!r} is not a device: use auto, cpu, cuda or cuda:N") from None
    if device.type != "cuda":
        return device
    if not facts.available:
        raise DeviceUnavailable(no_cuda_message(facts, variant).replace("no usable CUDA GPU", f"{requested} asked for"))
    index = _index(requested)
    if index is not None and index >= facts.device_count:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        seen = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
        raise DeviceUnavailable(f"{requested} asked for, but this process sees {facts.device_count} GPU(s){seen}")
    return torch.device("cuda", index or 0)


def describe(device: torch.device, attention: str | None = None) -> dict[str, Any]:
    """The environment as `ready` reports it (docs/protocol.md): torch, the CUDA build, cuDNN,
    the driver, the GPU and its compute capability, the attention kernel in use."""
    cudnn = None
    try:
        v = torch.backends.cudnn.version() if torch.version.cuda else None
        if v:  # 9.x: 91002 is 9.10.2; 8.x: 8907 is 8.9.7
            cudnn = (
                f"{v // 10000}.{v % 10000 // 100}.{v % 100}"
                if v >= 10000
                else f"{v // 1000}.{v % 1000 // 100}.{v % 100}"
            )
    except Exception:
        pass
    gpu = capability = None
    if device.type == "cuda":
        try:
            gpu = torch.cuda.get_device_name(device)
            major, minor = torch.cuda.get_device_capability(device)
            capability = f"{major}.{minor}"
        except Exception:
            pass
    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": cudnn,
        "driver": driver_version(),
        "gpu": gpu,
        "capability": capability,
        "attention": attention,
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }

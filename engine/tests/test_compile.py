"""Compilation never happens inside a request: after warm-up (one bucket, batch 1 and 2), other
buckets and larger batches reuse the compiled graphs. Counted with dynamo's `eager` backend on the
tiny model, so it runs on the CPU; inductor on a GPU compiles the same graphs (bench/gpu_suite.py)."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from kontext_engine import sampler
from kontext_engine.editor import Editor, EditRequest
from kontext_engine.loading import load_model
from kontext_engine.resolution import condition_size
from kontext_engine.speed import compile_transformer


@pytest.fixture
def compiled_editor(tiny_dir: Path) -> Iterator[tuple[Editor, list[int]]]:
    """A fresh tiny model (the session's stays uncompiled) with its blocks compiled by a backend
    that counts the graphs dynamo hands it. The VAE is not compiled, so it is stubbed out here."""
    torch._dynamo.reset()
    model = load_model(tiny_dir, torch.device("cpu"), torch.float32)
    graphs: list[int] = []

    def counting(gm: torch.fx.GraphModule, example_inputs: list) -> object:  # type: ignore[type-arg]
        graphs.append(len(gm.graph.nodes))
        return gm.forward

    compile_transformer(model.transformer, model.device, None, backend=counting)
    editor = Editor(model, None, prompt_cache_size=0, condition_cache_size=0)

    def encode_condition(image: np.ndarray, size: tuple[int, int] | None = None) -> tuple[torch.Tensor, int, int, bool]:
        lh, lw = sampler.latent_grid(*(size or condition_size(image.shape[1], image.shape[0])))
        return torch.randn(1, lh * lw // 4, 64), lh, lw, False

    editor.encode_condition = encode_condition  # type: ignore[method-assign]
    editor.decode = lambda x, lh, lw: torch.zeros(x.shape[0], 3, lh * 8, lw * 8)  # type: ignore[method-assign]
    yield editor, graphs
    torch._dynamo.reset()


def test_no_graph_is_compiled_after_warm_up(compiled_editor: tuple[Editor, list[int]]) -> None:
    editor, graphs = compiled_editor
    editor.warm_up([(1024, 1024)], (1, 2), steps=1)
    warmed = len(graphs)
    assert warmed > 0
    other_bucket = np.zeros((752, 1392, 3), dtype=np.uint8)  # 16:9: another sequence length (4089 + 4089 + 512)
    for seeds in ((7,), (7, 8), (7, 8, 9, 10)):  # batch 1 → 2 → 4
        result = editor.edit(EditRequest(other_bucket, "another prompt", "match_input_image", 1, 2.5, seeds, True))
        assert (result.width, result.height, len(result.images)) == (1392, 752, len(seeds))
        assert len(graphs) == warmed, f"batch {len(seeds)} at 1392x752 compiled {len(graphs) - warmed} new graph(s)"

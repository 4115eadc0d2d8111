"""Property tests for the placement and sizing of several reference images (conditioning.py):
random sets of one to four condition images, thousands of cases, a fixed seed so a failure
repeats. Whatever the sizes: no two condition tokens share a RoPE position under `offset`, every
image its own index under `index`, and the token cap always holds with the first image's bucket kept."""

import random

import pytest

from kontext_engine import conditioning
from kontext_engine.errors import EngineError

CASES = 1000


def random_sizes(rng: random.Random, n: int) -> list[tuple[int, int]]:
    """n image sizes in pixels, sides multiples of 16 from 16 to 2048 (what buckets and caps give)."""
    return [(16 * rng.randint(1, 128), 16 * rng.randint(1, 128)) for _ in range(n)]


def small_sizes(rng: random.Random, n: int) -> list[tuple[int, int]]:
    """The same shapes at most 512 px a side: the placement is the same at every scale, and checking
    every token's position of 2048² grids would take the suite minutes."""
    return [(16 * rng.randint(1, 32), 16 * rng.randint(1, 32)) for _ in range(n)]


def grid(size: tuple[int, int]) -> tuple[int, int]:
    w, h = size
    return h // 8, w // 8  # the latent grid (lh, lw)


@pytest.mark.parametrize("seed", range(4))
def test_offset_never_puts_two_tokens_at_one_position(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(CASES // 4):
        grids = [grid(s) for s in small_sizes(rng, rng.randint(1, 4))]
        ids = conditioning.condition_ids(grids, "offset")
        assert ids.shape[0] == sum((lh // 2) * (lw // 2) for lh, lw in grids)
        assert set(ids[:, 0].tolist()) == {1.0}  # all at RoPE index 1, as ComfyUI's default
        positions = {tuple(p) for p in ids[:, 1:].long().tolist()}
        assert len(positions) == ids.shape[0], grids
        first = conditioning.placements(grids, "offset")[0]
        assert first == (1, 0, 0)  # the edited image where a single condition image sits today


def test_index_gives_each_image_its_own_index_at_the_origin() -> None:
    rng = random.Random(7)
    for _ in range(CASES):
        grids = [grid(s) for s in random_sizes(rng, rng.randint(1, 4))]
        assert conditioning.placements(grids, "index") == [(i, 0, 0) for i in range(1, len(grids) + 1)]


def test_the_cap_holds_and_the_first_image_keeps_its_bucket() -> None:
    rng = random.Random(11)
    checked = 0
    for _ in range(CASES):
        sizes = random_sizes(rng, rng.randint(1, 4))
        first = conditioning.tokens(*sizes[0])
        cap = rng.randint(first, 3 * 4096 + first)
        try:
            fitted = conditioning.fit_sizes(sizes, cap)
        except EngineError as e:
            assert e.field == "input_image_2"
            assert cap - first < len(sizes) - 1  # refused only when not one token per reference is left
            continue
        checked += 1
        assert fitted[0] == sizes[0]
        assert sum(conditioning.tokens(w, h) for w, h in fitted) <= cap
        for (w, h), (fw, fh) in zip(sizes[1:], fitted[1:], strict=True):
            assert fw % 16 == 0 and fh % 16 == 0 and fw >= 16 and fh >= 16
            assert fw <= w and fh <= h  # scaled down, never up
        if sum(conditioning.tokens(w, h) for w, h in sizes) <= cap:
            assert fitted == sizes  # under the cap nothing changes
    assert checked > CASES // 2

import math

import torch

from kontext_engine import sampler
from kontext_engine.configs import SCHEDULER_CONFIG


def test_mu_is_1_15_at_4096_target_tokens_and_0_5_at_256() -> None:
    assert math.isclose(sampler.shift_mu(4096, SCHEDULER_CONFIG), 1.15, abs_tol=1e-12)
    assert math.isclose(sampler.shift_mu(256, SCHEDULER_CONFIG), 0.5, abs_tol=1e-12)


def test_schedule_runs_from_one_to_zero_shifted_by_mu() -> None:
    sigmas = sampler.schedule(28, 4096, SCHEDULER_CONFIG)
    assert sigmas.dtype == torch.float32 and sigmas.numel() == 29
    assert sigmas[0] == 1.0 and sigmas[-1] == 0.0
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    # The shift keeps more steps at high noise: σ at the midpoint is above the unshifted 0.5.
    unshifted = 1 - 14 / 28
    mu = 1.15
    expected = math.exp(mu) / (math.exp(mu) + (1 / unshifted - 1))
    assert math.isclose(float(sigmas[14]), expected, rel_tol=1e-6)


def test_pack_unpack_round_trip_and_channel_order() -> None:
    z = torch.randn(2, 16, 12, 20)
    x = sampler.pack(z)
    assert x.shape == (2, 6 * 10, 64)
    assert torch.equal(sampler.unpack(x, 12, 20), z)
    # Token 0 holds the top-left 2×2 patch of every channel, ordered (c, ph, pw).
    assert torch.equal(x[0, 0, :4], z[0, 0, :2, :2].reshape(4))
    assert torch.equal(x[0, 0, 4:8], z[0, 1, :2, :2].reshape(4))


def test_position_ids_mark_condition_tokens_on_the_first_axis() -> None:
    target, condition = sampler.position_ids(4, 6, 0), sampler.position_ids(4, 6, 1)
    assert target.shape == (6, 3)
    assert target[:, 0].eq(0).all() and condition[:, 0].eq(1).all()
    assert target[:, 1].tolist() == [0, 0, 0, 1, 1, 1] and target[:, 2].tolist() == [0, 1, 2, 0, 1, 2]
    assert torch.equal(target[:, 1:], condition[:, 1:])


def test_latent_grid_rounds_up_to_whole_tokens() -> None:
    assert sampler.latent_grid(1024, 1024) == (128, 128)
    assert sampler.latent_grid(1568, 672) == (84, 196)
    assert sampler.latent_grid(1000, 1000) == (126, 126)


def test_noise_depends_only_on_the_seed() -> None:
    a = sampler.draw_noise([3, 5], 8, 8)
    assert torch.equal(a, sampler.draw_noise([3, 5], 8, 8))
    assert torch.equal(a[1:], sampler.draw_noise([5], 8, 8))  # the same in any batch
    assert not torch.equal(a[0], a[1])

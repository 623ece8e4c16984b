"""The episodes batch: packing each task's valid steps for the losses."""

import torch

from metarl.sampling.episodes import Episodes

H, T, E, OBS = 5, 3, 4, 2


def episodes(lengths: torch.Tensor) -> Episodes:
    g = torch.Generator().manual_seed(0)
    mask = (torch.arange(H).view(H, 1, 1) < lengths).float()
    return Episodes(
        observations=torch.randn(H, T, E, OBS, generator=g) * mask.unsqueeze(-1),
        actions=torch.randn(H, T, E, 2, generator=g) * mask.unsqueeze(-1),
        rewards=torch.randn(H, T, E, generator=g) * mask,
        mask=mask,
        lengths=lengths,
        terminated=lengths < H,
        truncated=lengths == H,
        nonfinite=torch.zeros(T, E, dtype=torch.bool),
        final_observations=torch.zeros(T, E, OBS),
    )


def test_packed_holds_exactly_each_tasks_valid_steps_in_order():
    lengths = torch.tensor([[5, 0, 2, 1], [3, 3, 0, 0], [1, 0, 0, 0]])  # 8, 6 and 1 valid steps
    batch = episodes(lengths)
    mask = batch.packed(batch.mask)
    assert mask.shape == (T, 8, 1)
    assert mask.sum(dim=(1, 2)).tolist() == [8.0, 6.0, 1.0]
    assert bool((mask[:, :-1] >= mask[:, 1:]).all())  # valid steps first
    obs = batch.packed(batch.observations)
    assert obs.shape == (T, 8, 1, OBS)
    for task in range(T):
        valid = batch.task_major(batch.mask)[task].reshape(-1) > 0
        expected = batch.task_major(batch.observations)[task].reshape(-1, OBS)[valid]
        torch.testing.assert_close(obs[task, : len(expected), 0], expected, rtol=0, atol=0)
    torch.testing.assert_close(
        (batch.packed(batch.rewards) * mask).sum(dim=(1, 2)), batch.returns().sum(1), rtol=1e-6, atol=1e-6
    )


def test_packed_without_padding_is_the_task_major_layout():
    batch = episodes(torch.full((T, E), H))
    assert batch.valid_step_index.shape == (T, H * E)
    for name in ("observations", "actions", "rewards", "mask"):
        tensor = getattr(batch, name)
        expected = batch.task_major(tensor).reshape(T, H * E, 1, *tensor.shape[3:])
        torch.testing.assert_close(batch.packed(tensor), expected, rtol=0, atol=0)


def test_mean_return_leaves_out_episodes_cut_short_by_nonfinite_values():
    import dataclasses
    import math

    batch = episodes(torch.full((T, E), H))
    returns = batch.returns()
    bad = torch.zeros(T, E, dtype=torch.bool)
    bad[0, 1] = bad[2, 3] = True
    damaged = dataclasses.replace(batch, nonfinite=bad)
    assert damaged.mean_return() == float(returns[~bad].mean())
    assert math.isclose(batch.mean_return(), float(returns.mean()), rel_tol=1e-6)
    assert math.isnan(dataclasses.replace(batch, nonfinite=torch.ones(T, E, dtype=torch.bool)).mean_return())

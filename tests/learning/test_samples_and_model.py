"""Training samples (plain, VLASH, recorded labels), the task bag of words, and the policy module."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from policy_server.backend import BackendError  # noqa: E402
from policy_server.learning.demos import Demos  # noqa: E402
from policy_server.learning.model import VisuomotorPolicy  # noqa: E402
from policy_server.learning.samples import (  # noqa: E402
    bag_of_words,
    build_recorded_prefix_samples,
    build_samples,
    vocabulary,
)
from policy_server.model_io import encode_task  # noqa: E402
from sim.experts import ExpertPolicy  # noqa: E402
from sim.tasks.layout import ENV_STATE_DIM, TARGET_POS  # noqa: E402

FPS, H = 30.0, 8
PICK = "pick up the red cube and put it in the green zone"


def demos(lengths=(12, 7)) -> Demos:
    n = sum(lengths)
    rng = np.random.default_rng(0)
    states = np.zeros((n, 6), np.float32)
    states[:, 0] = np.arange(n) * 0.01  # the frame index is readable from the state
    states[:, 5] = 1.0
    env = np.zeros((n, ENV_STATE_DIM), np.float32)
    env[:, 0] = 1.0  # reach_jump
    env[:, TARGET_POS] = (0.2, 0.05, 0.1)
    ends = np.repeat(np.cumsum(lengths), lengths)
    return Demos(fps=FPS, state_names=[f"j{i}" for i in range(6)], cameras=["front"], states=states,
                 actions=states + 0.5, environment_states=env,
                 images={"front": rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8)},
                 episode=np.repeat(np.arange(len(lengths)), lengths), episode_end=ends,
                 instructions=["touch the ball"] * lengths[0] + [PICK] * lengths[1])


def test_plain_samples_are_the_experts_chunk_from_each_frame():
    d = demos()
    s = build_samples(d, vocabulary(d.instructions), H)
    assert len(s) == len(d) and np.all(s.exec_offset_s == 0) and np.array_equal(s.state, d.states)
    want = ExpertPolicy(H, FPS).plan(d.states[5], d.environment_states[5], d.instructions[5])
    np.testing.assert_allclose(s.target[5], want)


def test_vlash_samples_condition_on_a_later_state_of_the_same_episode_with_relabelled_chunks():
    d = demos()
    s = build_samples(d, vocabulary(d.instructions), H, latency_s=(0.1, 0.3), copies=3, seed=1)
    assert len(s) == 3 * len(d)
    ticks = np.rint(s.state[:, 0] / 0.01).astype(int) - s.frame  # state index − image frame
    assert np.all(ticks >= 0) and np.all(ticks <= 9)
    np.testing.assert_allclose(s.exec_offset_s, ticks / FPS, atol=1e-6)
    clamped = s.frame + ticks == d.episode_end[s.frame] - 1
    assert np.all((ticks >= 3) | clamped)  # Δ ≥ 0.1 s unless the episode ended first
    assert np.all(d.episode[s.frame + ticks] == d.episode[s.frame])  # never across episodes
    i = int(np.argmax(ticks))
    want = ExpertPolicy(H, FPS).plan(s.state[i], d.environment_states[s.frame[i]], d.instructions[s.frame[i]],
                                     float(s.exec_offset_s[i]))
    np.testing.assert_allclose(s.target[i], want)


def test_commanded_vlash_samples_condition_on_the_command_before_the_chunk_plus_plain_copies():
    """What vlash_rail's `commanded` rollforward sends: the command for exec_tick − 1, offset Δ ≥ 1 tick."""
    d = demos()
    s = build_samples(d, vocabulary(d.instructions), H, latency_s=(0.0, 0.2), copies=2, seed=3,
                      vlash_state="commanded", plain_copy=True)
    n = len(d)
    assert len(s) == 3 * n
    np.testing.assert_array_equal(s.state[:n], d.states)  # the plain copy: measured state, offset 0
    assert np.all(s.exec_offset_s[:n] == 0)
    vl = slice(n, None)
    cond = np.rint((s.state[vl, 0] - 0.5) / 0.01).astype(int)  # actions = states + 0.5
    np.testing.assert_allclose(s.state[vl], d.actions[cond])
    assert np.all(cond >= s.frame[vl]) and np.all(d.episode[cond] == d.episode[s.frame[vl]])
    np.testing.assert_allclose(s.exec_offset_s[vl], (cond + 1 - s.frame[vl]) / FPS, atol=1e-6)
    assert np.all(s.exec_offset_s[vl] >= 1 / FPS - 1e-6) and np.all(s.exec_offset_s[vl] <= 6 / FPS + 1e-6)
    i = n + int(np.argmax(s.exec_offset_s[vl]))
    want = ExpertPolicy(H, FPS).plan(s.state[i], d.environment_states[s.frame[i]], d.instructions[s.frame[i]],
                                     float(s.exec_offset_s[i]))
    np.testing.assert_allclose(s.target[i], want)
    with pytest.raises(ValueError, match="vlash_state"):
        build_samples(d, vocabulary(d.instructions), H, latency_s=(0.0, 0.2), vlash_state="future")


def test_stale_plan_vlash_samples_condition_on_an_older_plans_row_for_the_tick_before_the_chunk():
    """The commands a rollforward adds up at deployment come from a chunk requested ~one latency earlier: the
    conditioning state is row t + k − 1 of the expert's plan made at frame t − k (never before the episode's first
    frame), the offset k ticks, the label the expert's plan from that state for frame t's scene."""
    d = demos()
    s = build_samples(d, vocabulary(d.instructions), H, latency_s=(0.05, 0.2), copies=2, seed=5,
                      vlash_state="stale_plan")
    assert len(s) == 2 * len(d)
    ticks = np.rint(s.exec_offset_s * FPS).astype(int)
    assert np.all(ticks >= 2) and np.all(ticks <= 6) and len(np.unique(ticks)) > 1
    expert = ExpertPolicy(H, FPS)
    start = d.episode_end - np.array([12] * 12 + [7] * 7)
    planned_at = np.maximum(s.frame - ticks, start[s.frame])
    assert np.any(planned_at == start[s.frame]) and np.any(planned_at > start[s.frame])  # clamped and not
    for i in range(len(s)):
        f, k, at = int(s.frame[i]), int(ticks[i]), int(planned_at[i])
        plan = expert.plan(d.states[at], d.environment_states[at], d.instructions[at])
        np.testing.assert_allclose(s.state[i], plan[min(f + k - 1 - at, H - 1)], atol=1e-6)
        want = expert.plan(s.state[i], d.environment_states[f], d.instructions[f], k / FPS)
        np.testing.assert_allclose(s.target[i], want, atol=1e-6)


def test_recorded_prefix_samples_commit_the_recorded_commands_then_the_experts_plan_from_the_last():
    """Training-time RTC on what a robot really commits to: rows 0..d-1 are the commands recorded after frame t,
    the rest the expert's plan from the last of them; the state and images stay frame t's."""
    d = demos()
    s = build_recorded_prefix_samples(d, vocabulary(d.instructions), H, (2, 5), free_fraction=0.3, seed=4)
    assert len(s) == len(d) and np.array_equal(s.frame, np.arange(len(d))) and np.array_equal(s.state, d.states)
    assert np.all(s.exec_offset_s == 0) and s.prefix_rows is not None
    assert np.all((s.prefix_rows == 0) | (s.prefix_rows >= 1)) and s.prefix_rows.max() <= 5
    assert 0 < np.count_nonzero(s.prefix_rows == 0) < len(d)  # some prefix-free samples, not all
    assert np.all(s.frame + s.prefix_rows <= d.episode_end)  # never a command from the next episode
    expert = ExpertPolicy(H, FPS)
    for i in range(len(d)):
        rows = int(s.prefix_rows[i])
        np.testing.assert_array_equal(s.target[i, :rows], d.actions[i:i + rows])
        plan_from = d.actions[i + rows - 1] if rows else d.states[i]
        want = expert.plan(plan_from, d.environment_states[i], d.instructions[i], rows / FPS)
        np.testing.assert_allclose(s.target[i, rows:], want[: H - rows], atol=1e-6)
    sub = s.subset(s.prefix_rows > 0)  # the per-sample rows travel with the samples
    assert np.all(sub.prefix_rows > 0) and len(sub) == len(sub.prefix_rows)
    with pytest.raises(ValueError, match="prefix_ticks"):
        build_recorded_prefix_samples(d, vocabulary(d.instructions), H, (0, H), free_fraction=0.0)


def test_flow_loss_with_several_noise_draws_per_sample_is_finite_and_differs():
    model = VisuomotorPolicy(chunk_length=H, cameras=["front"], image_size=16, head="flow", width=32)
    state, image = torch.zeros(4, 6), torch.rand(4, 3, 16, 16)
    target = torch.ones(4, H, 6)
    one = model.loss(state, [image], None, None, target, generator=torch.Generator().manual_seed(0))
    four = model.loss(state, [image], None, None, target, generator=torch.Generator().manual_seed(0), flow_samples=4)
    assert torch.isfinite(four) and not torch.equal(one, four)
    prefixed = VisuomotorPolicy(chunk_length=H, cameras=["front"], image_size=16, head="flow", width=32,
                                prefix_conditioning=True)
    rows = torch.tensor([0, 2, 3, 1])  # the committed rows repeat with the draws
    assert torch.isfinite(prefixed.loss(state, [image], None, None, target, generator=torch.Generator().manual_seed(0),
                                        prefix_rows=rows, flow_samples=3))


def test_recorded_labels_are_the_next_actions_padded_at_the_episode_end():
    d = demos()
    s = build_samples(d, vocabulary(d.instructions), H, labels="recorded")
    np.testing.assert_allclose(s.target[2], d.actions[2:2 + H])
    np.testing.assert_allclose(s.target[10][:2], d.actions[10:12])
    np.testing.assert_allclose(s.target[10][2:], np.repeat(d.actions[11:12], H - 2, axis=0))


def test_task_bag_of_words_matches_the_servers_encoding_and_rejects_unknown_tasks():
    vocab = vocabulary(["touch the ball", PICK])
    blue = "pick up the BLUE cube and put it in the yellow zone"
    np.testing.assert_array_equal(bag_of_words([PICK], vocab)[0], encode_task(PICK, vocab))
    assert not np.array_equal(encode_task(blue, vocab), encode_task(PICK, vocab))  # 'red', 'green' absent
    with pytest.raises(BackendError, match="none of the words"):
        encode_task("make coffee", vocab)


@pytest.mark.parametrize(("head", "flow_target"), [("flow", "data"), ("flow", "velocity"), ("regression", "data")])
def test_policy_outputs_offsets_from_the_state_and_reads_task_and_exec_offset(head, flow_target):
    model = VisuomotorPolicy(chunk_length=H, cameras=["front"], image_size=16, vocab_size=5, exec_offset=True,
                             head=head, flow_steps=3, flow_target=flow_target).eval()
    state, image = torch.rand(2, 6), torch.rand(2, 3, 16, 16)
    task, offset = torch.zeros(2, 5), torch.zeros(2, 1)
    out = model(state, image, task, offset)
    assert out.shape == (2, H, 6)
    shifted = model(state + 1.0, image, task, offset)
    assert not torch.allclose(shifted, out)
    task2 = task.clone()
    task2[:, 1] = 1.0
    assert not torch.allclose(model(state, image, task2, offset), out)
    assert not torch.allclose(model(state, image, task, offset + 0.2), out)
    assert torch.equal(model(state, image, task, offset), out)  # deterministic (fixed flow noise)


@pytest.mark.timeout(120)
def test_a_few_dozen_steps_fit_a_tiny_dataset():
    """The regression head (the flow head's learning is checked by the real training run's held-out error)."""
    torch.manual_seed(0)
    model = VisuomotorPolicy(chunk_length=H, cameras=["front"], image_size=16, head="regression", width=64)
    state, image = torch.rand(16, 6), torch.rand(16, 3, 16, 16)
    target = state[:, None, :] + torch.linspace(0, 1, H)[None, :, None] * state[:, None, :].flip(-1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        loss = model.loss(state, [image], None, None, target, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


@pytest.mark.parametrize("kw", [{"prefix_source": "recorded"},  # no prefix range
                                {"prefix_source": "recorded", "prefix_ticks": (1, 4), "labels": "recorded"},
                                {"prefix_source": "recorded", "prefix_ticks": (1, 4), "vlash_latency_s": (0.1, 0.2)},
                                {"prefix_source": "committed", "prefix_ticks": (1, 4)}])
def test_recorded_prefixes_need_a_prefix_range_expert_labels_and_no_vlash(kw):
    from policy_server.learning.train import TrainConfig

    with pytest.raises(ValueError, match="prefix"):
        TrainConfig(dataset="d", out="o", head="flow", **kw)
    assert TrainConfig(dataset="d", out="o", head="flow", prefix_ticks=(1, 4), prefix_source="recorded")

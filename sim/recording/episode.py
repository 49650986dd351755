"""One expert demonstration in virtual time: per tick the observation, the clean expert action, images.

The expert runs as it is served: every `replan_every` ticks it plans a chunk from the measured state
and the environment state, and the arm executes the chunk's actions one per tick (the commanded
trajectory runs ahead of the lagging servo, as in the async loop; replanning every tick from the
measured state would crawl). The chunk's action for the tick is the label; what the arm executes is
the label plus the noise injector's offset (see `sim.recording.noise`).

With `dagger` (see `sim.recording.dagger`) a learned policy drives instead, the expert's chunk only with
probability β, and the recorded action is the command executed; the labels come from relabelling.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sim.recording.dagger import DaggerConfig
from sim.recording.noise import NoiseConfig, NoiseInjector


@dataclass(eq=False)
class Episode:
    task: str
    seed: int
    instruction: str
    fps: float
    states: np.ndarray  # [T, 6] float32, measured joint state at each frame
    actions: np.ndarray  # [T, 6] float32, clean expert action (the label)
    environment_states: np.ndarray  # [T, env_dim] float32, privileged (for relabelling, never a policy input)
    images: dict[str, np.ndarray] = field(default_factory=dict)  # camera -> [T, H, W, 3] uint8
    success: bool = False
    noisy: bool = False
    expert_fraction: float = 1.0  # share of requests the expert answered (DAgger recordings: < 1)

    @property
    def length(self) -> int:
        return int(self.states.shape[0])


def record_episode(
    task: str,
    seed: int,
    *,
    cameras: Sequence[str] = ("front", "wrist"),
    image_size: int = 64,
    fps: float = 30.0,
    noise: NoiseConfig | None = None,
    max_seconds: float | None = None,
    replan_every: int = 10,
    dagger: DaggerConfig | None = None,
) -> Episode:
    """Run the expert (or, with `dagger`, a learned policy labelled by the expert) on `task` from `seed` until
    the task is done (or `max_seconds`) and keep every frame."""
    import sim
    from sim.experts import ExpertPolicy

    robot = sim.make_robot(task, mode="virtual", fps=fps, seed=seed, cameras=tuple(cameras),
                           image_size=(image_size, image_size), render=bool(cameras))
    robot.connect()
    expert = ExpertPolicy(replan_every, fps)
    injector = NoiseInjector(noise or NoiseConfig(std_rad=0.0), seed, fps)
    driver = None
    if dagger is not None:
        from sim.recording.dagger import PolicyDriver

        driver = PolicyDriver(dagger, seed, fps, cameras, image_size, replan_every)
    command = None
    duration = robot.world.task.duration_s if max_seconds is None else min(max_seconds, robot.world.task.duration_s)
    states, actions, envs = [], [], []
    frames: dict[str, list[np.ndarray]] = {c: [] for c in cameras}
    try:
        for tick in range(max(1, int(round(duration * fps)))):
            obs = robot.get_observation(with_images=bool(cameras))
            if driver is not None:
                label = driver.action(tick, obs, robot.instruction, command)
            else:
                if tick % replan_every == 0:
                    chunk = expert.plan(obs.state, obs.environment_state, robot.instruction)
                label = chunk[tick % replan_every]
            states.append(obs.state)
            actions.append(label)
            envs.append(obs.environment_state)
            for cam in cameras:
                frames[cam].append(obs.images[cam])
            command = label + injector.offset(tick)
            robot.send_action(command)
            robot.step_tick()
            if robot.task_status().done:
                break
        status = robot.task_status()
    finally:
        robot.disconnect()
        if driver is not None:
            driver.close()
    return Episode(
        task=task, seed=seed, instruction=robot.instruction, fps=fps,
        states=np.asarray(states, np.float32), actions=np.asarray(actions, np.float32),
        environment_states=np.asarray(envs, np.float32),
        images={c: np.stack(f) for c, f in frames.items()},
        success=bool(status.success), noisy=injector.enabled,
        expert_fraction=1.0 if driver is None else driver.expert_fraction,
    )

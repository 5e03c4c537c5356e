"""The simulated stand-in arm: a `cotrain_robot.robot.Robot` backed by one domain of a task pair, so the
whole deployment path (bundle -> runner -> socket -> arm) runs before any hardware does."""
from __future__ import annotations

from typing import Any

import numpy as np
from cotrain_robot.client import ADDRESS_SCHEMES, remote_robot
from cotrain_robot.robot import Robot, RobotError


class SimRobot(Robot):
    """A `Robot` backed by one domain of a task pair (`tasks.make_env`, imported when connecting).

    seed: the first reset's seed when `reset` is given none (later unseeded resets draw from it).

    Observations are the env's own (with its sensing gaps), split into the layout's keys as float32;
    `robot_state`/`object_poses` give the same poses as a driver would (quaternions, float64), so the
    base class's `get_observation` on them reproduces the env's observation. Actions step the env;
    `done()`/`success()` are the env's termination and success test. Actions sent after the episode
    ended are ignored.
    """

    kind = "sim"

    def __init__(self, pair: str, domain: str = "target", magnitude: float = 1.0, backend: str = "robosuite",
                 seed: int | None = None):
        self.pair, self.domain, self.magnitude, self.backend, self.seed = pair, domain, magnitude, backend, seed
        self.env: Any = None
        self._obs: np.ndarray | None = None
        self._done = self._success = False
        self.actions_received: list[np.ndarray] = []

    def connect(self) -> None:
        if self.env is None:
            from tasks import make_env

            self.env = make_env(self.pair, self.domain, self.magnitude, backend=self.backend, seed=self.seed)
            self.layout = tuple(self.env.layout)

    def reset(self, seed: int | None = None) -> None:
        self.connect()
        self._obs, _ = self.env.reset(seed=seed)
        self._done = self._success = False

    def _split(self) -> dict[str, np.ndarray]:
        if self._obs is None:
            raise RobotError("no observation: call reset() first")
        out, i = {}, 0
        for key, n in self.layout:
            out[key] = self._obs[i:i + n].copy()
            i += n
        return out

    def get_observation(self) -> dict[str, np.ndarray]:
        return self._split()

    def _poses(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The env's observed poses (sensing gaps applied, quaternions as a driver gives them) at `keys`."""
        if self._obs is None:
            raise RobotError("no observation: call reset() first")
        return {k: np.array(self.env.last_obs[k]) for k in keys}

    def robot_state(self) -> dict[str, np.ndarray]:
        return self._poses(["eef_pos", "eef_quat", "gripper"])

    def object_poses(self) -> dict[str, np.ndarray]:
        return self._poses([f"{obj}_{part}" for obj in self.env.task.objects for part in ("pos", "quat")])

    def send_action(self, action: np.ndarray) -> None:
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        self.actions_received.append(a.copy())
        if self._obs is None or self._done:
            return
        self._obs, _, terminated, truncated, info = self.env.step(a)
        self._success = self._success or bool(info["is_success"])
        self._done = bool(terminated or truncated)

    def done(self) -> bool:
        return self._done

    def success(self) -> bool | None:
        return self._success

    def info(self) -> dict[str, Any]:
        self.connect()
        return {"kind": self.kind, "name": f"sim:{self.pair}", "pair": self.pair, "domain": self.domain,
                "magnitude": self.magnitude, "backend": self.backend, "horizon": int(self.env.horizon),
                "layout": [list(k) for k in self.layout]}

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None


def parse_sim_spec(spec: str) -> tuple[str, float]:
    """`sim:<pair>` or `sim:<pair>@<magnitude>` -> (pair, magnitude), the pair known and the magnitude one it
    runs at; ValueError naming the bad part otherwise. A factor pair's own `@` (`sim:lift+object_mass@0.5`)
    belongs to its name."""
    from tasks import check_magnitude

    body = spec[len("sim:"):]
    pair, magnitude = body, "1"
    if "@" in body and not _is_pair(body):
        pair, _, magnitude = body.rpartition("@")
    if not pair:
        raise ValueError(f"robot spec {spec!r}: expected sim:<pair>[@<magnitude>]")
    try:
        value = float(magnitude)
    except ValueError:
        raise ValueError(f"robot spec {spec!r}: the magnitude {magnitude!r} is not a number") from None
    try:
        check_magnitude(pair, value)
    except KeyError as err:
        raise ValueError(f"robot spec {spec!r}: {err.args[0]}") from None
    except ValueError as err:
        raise ValueError(f"robot spec {spec!r}: {err}") from None
    return pair, value


def _is_pair(name: str) -> bool:
    from tasks import get_pair

    try:
        get_pair(name)
    except (KeyError, ValueError):
        return False
    return True


def make_robot(spec: str, timeout_s: float = 2.0, domain: str = "target") -> Robot:
    """`sim:<pair>[@<magnitude>]` -> an in-process `SimRobot`; `tcp://host:port` -> a `RemoteRobot`."""
    if spec.startswith("sim:"):
        pair, magnitude = parse_sim_spec(spec)
        return SimRobot(pair, domain, magnitude)
    if spec.startswith(ADDRESS_SCHEMES):
        return remote_robot(spec, timeout_s)
    raise ValueError(f"unknown robot spec {spec!r}: use sim:<pair> or tcp://host:port")

"""Safety checks on the policy side, before any action leaves the runner.

`SafetyLimits` / `SafetyChecker` refuse an action that is not finite, lies outside the action limits
(beyond a small tolerance; inside it the action is clipped), would put the end-effector target outside
the workspace box, or moves the end effector more than the maximum step; a non-finite observation is
refused too. On a refusal the runner sends the hold action (`SafetyChecker.hold_action`), logs the
violation and ends the episode as failed.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .robot import HOLD_GRIPPER_KEEP


@dataclass(frozen=True)
class SafetyLimits:
    """Checks applied to every action before it leaves the runner. Positions in the policy frame (m).

    None for a limit disables it; `from_bundle` fills the action limits and scales from policy.json.
    """

    action_low: tuple[float, ...] | None = None
    """Lower action limit per dimension (default: the bundle's)."""
    action_high: tuple[float, ...] | None = None
    """Upper action limit per dimension (default: the bundle's)."""
    action_tolerance: float = 0.05
    """An action beyond its limits by more than this is refused; within it, clipped to the limits."""
    workspace_low: tuple[float, float, float] | None = None
    """Lower corner of the box the commanded end-effector target must stay in (m)."""
    workspace_high: tuple[float, float, float] | None = None
    """Upper corner of that box (m)."""
    max_eef_step_m: float | None = None
    """Largest commanded end-effector translation in one control step (m)."""
    position_scale_m: float | None = None
    """Metres of end-effector motion per unit of a[0:3] (default: the bundle's `action.position_scale_m`)."""
    gripper_index: int | None = None
    """Index of the gripper command (kept by the hold action); default: the bundle's `gripper` entry."""

    def __post_init__(self) -> None:
        if (self.workspace_low is None) != (self.workspace_high is None):
            raise ValueError("give both workspace_low and workspace_high, or neither")
        if self.workspace_low is not None and np.any(np.asarray(self.workspace_low) >= np.asarray(self.workspace_high)):
            raise ValueError(f"workspace_low {self.workspace_low} must be below workspace_high {self.workspace_high}")
        if self.max_eef_step_m is not None and self.max_eef_step_m <= 0:
            raise ValueError(f"max_eef_step_m must be > 0, got {self.max_eef_step_m}")
        if self.action_tolerance < 0:
            raise ValueError(f"action_tolerance must be >= 0, got {self.action_tolerance}")
        if (self.workspace_low is not None or self.max_eef_step_m is not None) and self.position_scale_m is None:
            raise ValueError("workspace and step limits need position_scale_m (SafetyLimits.from_bundle sets it)")

    @classmethod
    def from_bundle(cls, spec: dict[str, Any], **overrides: Any) -> "SafetyLimits":
        """Limits with the bundle's action limits, position scale and gripper index, plus `overrides`."""
        act = spec["action"]
        grip = next((e["index"] for e in act.get("layout", []) if e.get("name") == "gripper"), None)
        base = {"action_low": tuple(act["low"]), "action_high": tuple(act["high"]),
                "position_scale_m": act.get("position_scale_m"), "gripper_index": grip}
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SafetyChecker:
    """Applies `SafetyLimits` to (action, observation) pairs and builds hold actions."""

    def __init__(self, limits: SafetyLimits, action_dim: int):
        self.limits, self.action_dim = limits, action_dim
        self.motion_dims = [i for i in range(action_dim) if i != limits.gripper_index]

    def check_observation(self, flat_obs: np.ndarray) -> list[str]:
        bad = ~np.isfinite(flat_obs)
        return [f"non-finite observation at indices {np.flatnonzero(bad).tolist()}"] if bad.any() else []

    def check(self, action: np.ndarray, observation: dict[str, np.ndarray]) -> tuple[np.ndarray, list[tuple[str, str]]]:
        """(the action to send, [(kind, detail)] violations); any violation means: do not send, hold."""
        lim = self.limits
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        if a.shape != (self.action_dim,):
            return a, [("action_shape", f"action of shape {a.shape}, expected ({self.action_dim},)")]
        if not np.isfinite(a).all():
            return a, [("nan_action", f"non-finite action {a.tolist()}")]
        out: list[tuple[str, str]] = []
        if lim.action_low is not None and lim.action_high is not None:
            low, high = np.asarray(lim.action_low, np.float32), np.asarray(lim.action_high, np.float32)
            beyond = np.maximum(low - a, a - high)
            if (beyond > lim.action_tolerance).any():
                i = int(np.argmax(beyond))
                out.append(("action_limit", f"a[{i}] = {a[i]:.4g} outside [{low[i]:.4g}, {high[i]:.4g}] "
                                            f"by more than {lim.action_tolerance}"))
            a = np.clip(a, low, high)
        if lim.position_scale_m is not None and (lim.max_eef_step_m is not None or lim.workspace_low is not None):
            delta = a[:3].astype(np.float64) * lim.position_scale_m
            if lim.max_eef_step_m is not None and np.linalg.norm(delta) > lim.max_eef_step_m:
                out.append(("eef_step", f"commanded end-effector step {np.linalg.norm(delta):.4f} m exceeds "
                                        f"{lim.max_eef_step_m} m"))
            if lim.workspace_low is not None:
                target = np.asarray(observation["eef_pos"], np.float64).reshape(3) + delta
                if (target < lim.workspace_low).any() or (target > lim.workspace_high).any():
                    out.append(("workspace", f"end-effector target {np.round(target, 4).tolist()} outside the box "
                                             f"{list(lim.workspace_low)} .. {list(lim.workspace_high)}"))
        return a, out

    def hold_action(self, last_action: np.ndarray | None) -> np.ndarray:
        """Zero motion, gripper command kept (the last one sent, or 'keep' when none was)."""
        hold = np.zeros(self.action_dim, np.float32)
        gi = self.limits.gripper_index
        if gi is not None:
            hold[gi] = HOLD_GRIPPER_KEEP if last_action is None else float(last_action[gi])
        return hold


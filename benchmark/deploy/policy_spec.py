"""What an exported bundle's policy.json says beyond the graphs: the observation and action layouts with
their units and frames, robosuite's controller settings and the simulated arm's measured motion, the
denoising schedule, normalizer statistics, success in simulation and the rule of the test seeds."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
from torch import nn

STEADY_INPUT, STEADY_STEPS = 0.5, 6  # constant x input whose steady per-step motion policy.json reports
log = logging.getLogger(__name__)

ROT6D_UNIT = ("rot6d: the first two columns of the rotation matrix, (r00, r10, r20, r01, r11, r21), "
              "from a quaternion (x, y, z, w) by cotrain_robot.geometry.rot6d")
_ROBOT_KEYS = {
    "eef_pos": ("m", "end-effector (grip site) position"),
    "eef_rot6d": (ROT6D_UNIT, "end-effector (grip site) orientation"),
    "gripper": ("opening in [0, 1]: 0 closed, 1 fully open", "gripper opening, normalized by the finger travel"),
}
_OBJECT_KEYS = {
    "pos": ("m", "position of the object's body origin"),
    "rot6d": (ROT6D_UNIT, "orientation of the object's body"),
    "rel_pos": ("m", "object position minus end-effector position (computed from the two above)"),
}
FRAME_TEXT = ("the simulation's world frame, whose axes are aligned with the robot base frame; the robot base "
              "sits at observation.robot_base_position_world in it (rotation: robot_base_quat_world). On a real "
              "arm, express base-frame poses in this frame (cotrain_robot.geometry.to_policy_frame).")


def layout_entries(layout: tuple[tuple[str, int], ...], objects: tuple[str, ...]) -> list[dict[str, Any]]:
    out, offset = [], 0
    for key, size in layout:
        unit, text = "unitless", "toy state"
        if key in _ROBOT_KEYS:
            unit, text = _ROBOT_KEYS[key]
        else:
            for obj in objects:
                suffix = key[len(obj) + 1:] if key.startswith(obj + "_") else None
                if suffix in _OBJECT_KEYS:
                    unit, text = _OBJECT_KEYS[suffix]
                    text = f"{obj}: {text}"
        out.append({"key": key, "size": size, "offset": offset, "unit": unit, "description": text})
        offset += size
    return out


def controller_spec(pair: Any, magnitude: float) -> dict[str, Any] | None:
    """robosuite's OSC_POSE controller settings of the pair's target robot (None where unavailable)."""
    try:
        from robosuite import load_composite_controller_config

        from tasks.gaps import build_effect

        kwargs: dict[str, Any] = {"robots": "Panda"}
        for gap in pair.domain("target", magnitude).gaps:
            build_effect(gap).robosuite_kwargs(kwargs)
        part = load_composite_controller_config(controller="BASIC", robot=kwargs["robots"])["body_parts"]["right"]
    except Exception as err:  # noqa: BLE001 - the description is optional; the bundle works without it
        log.warning("no controller description in policy.json: %s", err)
        return None
    keys = ("type", "input_type", "input_ref_frame", "input_min", "input_max", "output_min", "output_max")
    return {"robot": kwargs["robots"], **{k: part.get(k) for k in keys}}


def action_spec(action_dim: int, low: np.ndarray, high: np.ndarray, controller: dict | None,
                 steady_step: float | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"dim": action_dim, "low": low.tolist(), "high": high.tolist()}
    if controller is None or action_dim != 7:
        spec["layout"] = [{"index": i, "name": f"a{i}"} for i in range(action_dim)]
        return spec
    pos, rot = float(controller["output_max"][0]), float(controller["output_max"][3])
    names = ["dx", "dy", "dz", "drx", "dry", "drz", "gripper"]
    layout = [{"index": i, "name": names[i], "unit": f"controller input; x {pos} m per unit",
               "description": f"end-effector position delta along the base {'xyz'[i]} axis"} for i in range(3)]
    layout += [{"index": 3 + i, "name": names[3 + i], "unit": f"controller input; x {rot} rad per unit",
                "description": f"end-effector rotation delta (axis-angle component about base {'xyz'[i]})"}
               for i in range(3)]
    layout.append({"index": 6, "name": "gripper", "unit": "-1 open, +1 close",
                   "description": "gripper command (the demonstrations use its sign)"})
    spec.update(layout=layout, controller=controller, position_scale_m=pos, rotation_scale_rad=rot,
                hold=("zero motion (a[0:6] = 0) with the gripper command kept: the end effector holds its pose"),
                semantics=("robosuite OSC_POSE: each control step sets the end-effector target at the current "
                           "pose plus the delta (input clipped to its range), in the robot base frame; the "
                           "impedance controller (controller.kp, critically damped) covers part of it per step"))
    if steady_step is not None:
        spec["sim_steady_step_m_per_unit"] = steady_step
        spec["sim_steady_step_note"] = ("end-effector motion per control step per unit of a constant a[0], measured "
                                        "in the target domain at steady state: what the policy saw a unit of action "
                                        "do; a real arm's controller should reproduce it")
    return spec


def sampling_schedule(policy: nn.Module) -> dict[str, Any]:
    c = policy.config
    steps = [int(t) for t in policy.ddim_timesteps.tolist()]
    ab = (policy.sqrt_ab.double() ** 2).tolist()
    return {"sampler": "DDIM, eta = 0", "prediction": "epsilon", "beta_schedule": "squaredcos_cap_v2",
            "num_train_timesteps": c.num_train_timesteps, "num_inference_steps": c.num_inference_steps,
            "timesteps": steps, "alphas_cumprod": [ab[t] for t in steps], "final_alpha_cumprod": 1.0,
            "clip_x0": [-1.0, 1.0], "noise": "standard normal (B, H, A) float32, supplied by the caller"}


def normalizer_stats(policy: nn.Module) -> dict[str, Any]:
    out = {"rule": "normalized = (x - center) * scale, inside the graph (a dimension whose range was "
                   "below the normalizer's threshold is only centred: scale 1)"}
    for name, norm in (("obs", policy.obs_normalizer), ("action", policy.action_normalizer)):
        out[name] = {"center": norm.center.tolist(), "scale": norm.scale.tolist()}
    return out


def simulated_success(record: dict | None) -> dict[str, Any] | None:
    if not record:
        return None
    out = {}
    for domain in ("target", "source"):
        ev = record.get("eval", {}).get(domain)
        if ev:
            out[domain] = {k: ev.get(k) for k in ("successes", "n", "success_rate", "ci95")}
    return out



def env_facts(pair_name: str, magnitude: float) -> dict[str, Any]:
    """Action bounds, robot base pose and a reference end-effector pose from the target env."""
    from tasks import make_env

    env = make_env(pair_name, "target", magnitude)
    try:
        facts: dict[str, Any] = {"action_low": np.asarray(env.action_space.low, np.float32),
                                 "action_high": np.asarray(env.action_space.high, np.float32)}
        rs = getattr(env, "rs", None)
        if rs is not None:
            robot = rs.robots[0]
            obs, _ = env.reset(seed=0)
            from scipy.spatial.transform import Rotation

            facts.update(
                robot_base_position_world=np.asarray(robot.base_pos, float).round(6).tolist(),
                robot_base_quat_world=Rotation.from_matrix(np.asarray(robot.base_ori)).as_quat().round(6).tolist(),
                table_top_height_world=float(np.asarray(rs.table_offset)[2]) if hasattr(rs, "table_offset") else None,
                reference_eef_pose={"eef_pos": env.last_obs["eef_pos"].round(4).tolist(),
                                    "eef_quat": env.last_obs["eef_quat"].round(4).tolist(),
                                    "note": "the end effector at the start of an episode (robot home pose)"})
            if env.action_space.shape == (7,):  # OSC_POSE: how far the simulated arm actually moves per step
                xs = [env.last_obs["eef_pos"][0]]
                for _ in range(STEADY_STEPS):
                    env.step(np.r_[STEADY_INPUT, np.zeros(6)])
                    xs.append(env.last_obs["eef_pos"][0])
                facts["sim_steady_step_m_per_unit"] = round(float(np.mean(np.diff(xs)[-3:]) / STEADY_INPUT), 5)
        return facts
    finally:
        env.close()



def control_hz() -> float:
    from tasks.env import CONTROL_FREQ

    return float(CONTROL_FREQ)


def evaluation_seeds() -> dict[str, Any]:
    """The rule of the suite's test start states (`tasks.seeds`): the seeds an evaluation session on an arm
    uses by default (`cotrain_robot.session.bundle_test_seeds`), so it needs no part of the suite."""
    from tasks.seeds import MAX_RUN_SEED, SPAN, STREAM_BASE

    return {"seed_stream": "test", "first_seed": STREAM_BASE["test"], "seeds_per_run_seed": SPAN,
            "max_run_seed": MAX_RUN_SEED,
            "rule": "episode i of run seed s starts from seed first_seed + s * seeds_per_run_seed + i: the start "
                    "states every method is evaluated on in simulation"}

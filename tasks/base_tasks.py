"""Base manipulation tasks (robosuite environments) and their shared low-dimensional layout."""
from __future__ import annotations

from dataclasses import dataclass

from common.registry import Registry

from .core import TaskPair
from .toy import TOY_LAYOUT


@dataclass(frozen=True)
class BaseTask:
    """One robosuite task as the suite uses it.

    env_name: robosuite environment name.
    horizon: control steps (20 Hz) before an episode is truncated.
    objects: observation prefixes of the task's objects, in layout order.
    bodies: MuJoCo root body of each object, same order; the first is the one gap factors
        such as friction, mass and size act on.
    env_kwargs: extra robosuite constructor arguments (variants are arguments, not subclasses).
    version: bumped whenever the task's definition changes; every pair on it takes this version.
    layout: the per-step observation layout; empty: the robot's keys, then each object's (`obs_layout`).
    harness: `module:Class` of the hooks that run the task's pairs in the harness (demos, policy,
        evaluation; `benchmark.harness.run.PairHooks`), imported when a run needs them.
    """

    name: str
    env_name: str
    horizon: int
    objects: tuple[str, ...]
    bodies: tuple[str, ...]
    description: str
    env_kwargs: tuple[tuple[str, object], ...] = ()
    version: int = 1
    layout: tuple[tuple[str, int], ...] = ()
    harness: str = "benchmark.harness.run:PairHooks"

    @property
    def simulated(self) -> bool:
        """Whether the task runs in a simulator (robosuite): a robot, its controller, rollouts. The toy's
        pairs have none: their data are sampled and their policies evaluated exactly (tasks/toy.py)."""
        return bool(self.env_name)


BASE_TASKS: Registry[BaseTask] = Registry("base task")

for _task in (
    BaseTask("lift", "Lift", 100, ("cube",), ("cube_main",),
             "Lift a cube (half-size 0.021 m) 4 cm above the table.", version=2),  # 2: layout 2
    BaseTask("stack", "Stack", 200, ("cubeA", "cubeB"), ("cubeA_main", "cubeB_main"),
             "Pick the small red cube A and place it on the green cube B.", version=2),  # 2: layout 2
    BaseTask("square", "NutAssemblySquare", 400, ("nut",), ("SquareNut_main",),
             "robosuite's NutAssemblySquare: fit the square nut onto its peg "
             "(the single-nut variant of the study's NutAssembly).", version=3),  # 2: horizon 300 -> 400; 3: layout 2
    BaseTask("toy", "", 1, (), (),
             "Simulator-free toy pairs (tasks/toy.py): a state on a 2-D patch observed in R^3, a 2-D action.",
             layout=TOY_LAYOUT, harness="benchmark.toy.harness:ToyHooks"),
):
    BASE_TASKS.register(_task.name, _task)

# Per-step layout shared by every domain and embodiment: (key, size). No joint-space quantities.
# Version 1 had quaternions (x, y, z, w; w >= 0) where version 2 has rot6d: near w = 0, which a
# top-down gripper sits at, q and -q alternated and the input jumped while nothing moved.
# A layout change bumps every robot base task's version (hence every pair's).
LAYOUT_VERSION = 2
ROBOT_KEYS: tuple[tuple[str, int], ...] = (("eef_pos", 3), ("eef_rot6d", 6), ("gripper", 1))
OBJECT_KEYS: tuple[tuple[str, int], ...] = (("pos", 3), ("rot6d", 6), ("rel_pos", 3))


def obs_layout(base_task: str) -> tuple[tuple[str, int], ...]:
    """Flat observation layout of a base task: robot keys, then `<object>_{pos,rot6d,rel_pos}`.

    Units and frames: positions in metres in the robot-base-aligned world frame; orientations
    (`eef_rot6d`, `<obj>_rot6d`) as the first two columns of the rotation matrix, (r00, r10, r20,
    r01, r11, r21): continuous, unlike a quaternion (`cotrain_robot.geometry.rot6d`); `gripper` the
    opening in [0, 1] (0 closed, 1 fully open); `<obj>_rel_pos` = object position minus
    end-effector position.
    """
    task = BASE_TASKS[base_task]
    if task.layout:
        return task.layout
    keys = list(ROBOT_KEYS)
    for obj in task.objects:
        keys += [(f"{obj}_{k}", n) for k, n in OBJECT_KEYS]
    return tuple(keys)


def pair_layout(pair: TaskPair) -> tuple[tuple[str, int], ...]:
    """The flat low-dimensional observation layout of a pair's envs: its base task's (`obs_layout`), or for an
    image pair the robot's keys alone (proprioception): with the object poses in it, a policy could ignore the
    frames, and the visual gap with them."""
    return ROBOT_KEYS if pair.obs == "image" else obs_layout(pair.base_task)

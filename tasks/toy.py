"""The `toy` family: task pairs without a simulator, with a known optimal target policy.

Every toy pair maps a *state* `s = (u, v)` on a square 2-D patch to an observation `x` in R^3
(layout `(("x", 3),)`) and an action `a` in R^2. Each sample is one "demo" of length 1 (one
observation, one action), so a policy sees `n_obs_steps = 1` and predicts `horizon = 1`
(the `toy` profile). The expert is exact (no action noise): the optimal target action of any
target observation is known in closed form (`target_action`), so a learned policy's error is
exact, not estimated by rollouts.

The action maps are *swirls*, the spiral-shaped maps of docs/PROTOCOL.md's toy: `spiral(s, φ) =
R(κ·|s| + φ)·s`, the patch coordinates rotated by an angle growing with the radius (κ =
`TWIST` = 9 rad per unit radius: the patch's corners turn by about two full turns, so the
images of the patch's grid lines are spirals). The source map is `spiral(s, 0)`. Where a pair
changes the action map, the target map is the same spiral turned by a phase (`spiral(s, π/2)`
at the largest gap): a *different* map of the same coordinates that shares the source's
structure, so source data can teach the swirl and a few target samples the domain's
difference. These choices (phase-shifted swirls, the patch [-1, 1]^2, κ) are this suite's;
the study (Lei et al. 2026, docs/PROTOCOL.md "The toy model") gives the geometry, not the maps. κ was
set once, for informativeness only (docs/PROTOCOL.md: `target_only` on the N = 30 target samples
must be clearly worse than co-training, or no ratio can show transfer): measured on
`toy/study` at Δz = 1, one seed, 1000 steps, `target_only` reached a mean error of 0.12 at
κ = 3 (as good as co-training), 0.22 at κ = 6 (co-training 0.15) and 0.53 at κ = 9
(co-training 0.21); no other property of the toy was adjusted to any result.

Families (`toy/<family>`), magnitude m in [0, 1] (the target's; the source is m = 0):
- `study`: the study's toy. Source inputs `(u, v, 0)`, target inputs `(u, v, Δz)`: two
  parallel patches separated in height; the target action map is `spiral(s, π/2)` at every
  m (the correct action depends on the domain). m maps log-uniformly onto Δz:
  `Δz(m) = DZ_MIN·((1 + DZ_MAX/DZ_MIN)^m − 1)` with DZ_MIN = 0.01, DZ_MAX = 50, so
  m = 0 is Δz = 0 (overlapping) and m = 1 is Δz = 50 (disjoint); docs/PROTOCOL.md's grid
  {0.01, ..., 50} is `study_magnitude(dz)` (≈ 0.081 for 0.01, 0.53 for 1, 0.66 for 3). Note:
  unlike the other families, m = 0 here still differs in the action map (the study's
  overlapping regime), so its "no-gap control" is not the source domain.
- `shift`: observation shift. Target inputs `(u + 2.5·m, v, 0)`, the same action map of the
  state. Small m: the patches overlap with conflicting actions; m ≥ 0.8: side by side.
- `rotation`: rotated observation. The target patch is tilted about the u axis by
  θ = m·90°: `(u, v·cos θ, v·sin θ)`, the same action map of the state.
- `action_map`: a changed action map on identical inputs: target action `spiral(s, m·π/2)`.
  The overlapping case: no representation of the input can separate the domains, so only a
  domain label or the mixing ratio w decides which map the policy outputs (docs/PROTOCOL.md,
  the reweighting test). At m = 1 it equals `toy/study` at Δz = 0.
- `support`: a change of support. Target states on `[-1 + 1.5·m, 1 + 1.5·m] × [-1, 1]`,
  the same observation and action map (at m = 1 the supports overlap on a quarter).

Seeds (tasks.seeds): sample i of a stream draws its state from its own episode seed, so the
first n samples of a stream are the same for any larger n, and the source, target,
validation, replay and test streams never share a sample. The `replay` stream draws the
*same* states in both domains (from the target's support), which gives the paired inputs the
representation metrics need.

"Success" of a sampled target action: its L2 error to the optimal action is under
`SUCCESS_THRESHOLD` (0.2, about a fifth of the mean distance between the source and target
maps of `toy/study`, 1.08).
"""
from __future__ import annotations

import math
import numpy as np

from common.dataset import Dataset
from common.registry import Registry

from .core import Domain, TaskPair
from .seeds import episode_seeds

BASE_TASK = "toy"
TOY_LAYOUT: tuple[tuple[str, int], ...] = (("x", 3),)
OBS_DIM = 3
ACTION_DIM = 2
TWIST = 9.0
"""κ: swirl angle per unit radius (rad)."""
PHASE = math.pi / 2
"""Largest phase between the source and target maps (rad)."""
PATCH = (-1.0, 1.0)
"""The state patch along u and v: every family's source support is PATCH × PATCH."""
PATCH_SIDE = PATCH[1] - PATCH[0]
"""The patch's side length: toy policies scale every input axis by 2 / PATCH_SIDE (benchmark/toy/harness.py)."""
DZ_MIN, DZ_MAX = 0.01, 50.0
SHIFT_MAX = 2.5
SUPPORT_SHIFT_MAX = 1.5
SUCCESS_THRESHOLD = 0.2
N_TARGET, N_SOURCE = 30, 1000
"""Default demo counts of every toy pair (N target samples, M source samples)."""
PAIR_VERSION = 2
"""Version of every toy pair. 2: toy policies scale their inputs by the patch side, not by the
training inputs' largest range (benchmark/toy/harness.py, `fit_toy_normalizer`), so no run of version 1 is reused."""


def spiral(states: np.ndarray, phase: float | np.ndarray = 0.0) -> np.ndarray:
    """`R(κ·|s| + phase)·s` for states (n, 2) -> actions (n, 2) float32."""
    s = np.asarray(states, dtype=np.float64)
    ang = TWIST * np.linalg.norm(s, axis=1) + phase
    c, si = np.cos(ang), np.sin(ang)
    return np.stack([c * s[:, 0] - si * s[:, 1], si * s[:, 0] + c * s[:, 1]], axis=1).astype(np.float32)


def dz_of(magnitude: float) -> float:
    """`toy/study`: the height gap Δz of magnitude m (log-uniform, Δz(0) = 0, Δz(1) = 50)."""
    return DZ_MIN * ((1.0 + DZ_MAX / DZ_MIN) ** float(magnitude) - 1.0)


def study_magnitude(dz: float) -> float:
    """`toy/study`: the magnitude whose Δz is `dz` (inverse of `dz_of`), for dz in [0, 50]."""
    if not 0.0 <= dz <= DZ_MAX:
        raise ValueError(f"Δz must be in [0, {DZ_MAX}], got {dz}")
    return math.log1p(dz / DZ_MIN) / math.log1p(DZ_MAX / DZ_MIN)


class ToyFamily:
    """One toy gap: where states lie, how they are observed and acted on, per domain.

    Every method takes `domain` in {"source", "target"} and the target's magnitude m; the
    source domain ignores m. States are (n, 2), observations (n, 3), actions (n, 2).
    """

    name: str = ""
    description: str = ""
    unit: str = ""

    def bounds(self, domain: str, m: float) -> tuple[tuple[float, float], tuple[float, float]]:
        """((u_lo, u_hi), (v_lo, v_hi)) of the domain's state support."""
        return PATCH, PATCH

    def observe(self, domain: str, m: float, s: np.ndarray) -> np.ndarray:
        return np.concatenate([s, np.zeros((len(s), 1))], axis=1).astype(np.float32)

    def state_of(self, domain: str, m: float, x: np.ndarray) -> np.ndarray:
        """The state an observation of the domain shows (inverse of `observe` on its image)."""
        return np.asarray(x, dtype=np.float64)[:, :2]

    def act(self, domain: str, m: float, s: np.ndarray) -> np.ndarray:
        return spiral(s, 0.0)


class StudyToy(ToyFamily):
    name = "study"
    description = ("The study's toy (Lei et al. 2026): inputs on two parallel square patches in R^3, "
                   "source at height 0, target at height Δz; two different spiral maps of the patch "
                   "coordinates as actions (target = source swirl turned by 90°).")
    unit = "m -> Δz = 0.01·(5001^m − 1): 0 at m = 0, 1 at m ≈ 0.53, 50 at m = 1 (log-uniform)"

    def observe(self, domain, m, s):
        x = super().observe(domain, m, s)
        if domain == "target":
            x[:, 2] = dz_of(m)
        return x

    def act(self, domain, m, s):
        return spiral(s, PHASE if domain == "target" else 0.0)


class ShiftToy(ToyFamily):
    name = "shift"
    description = "Observation shift: the target patch is observed shifted along u; same action map of the state."
    unit = f"m -> shift {SHIFT_MAX}·m along u (the patch is 2 wide: disjoint from m = 0.8)"

    def observe(self, domain, m, s):
        x = super().observe(domain, m, s)
        if domain == "target":
            x[:, 0] += SHIFT_MAX * m
        return x

    def state_of(self, domain, m, x):
        s = super().state_of(domain, m, x).copy()
        if domain == "target":
            s[:, 0] -= SHIFT_MAX * m
        return s


class RotationToy(ToyFamily):
    name = "rotation"
    description = "Rotated observation: the target patch is tilted about the u axis; same action map of the state."
    unit = "m -> tilt θ = 90°·m about the u axis (the patches cross along v = 0)"

    def observe(self, domain, m, s):
        x = super().observe(domain, m, s)
        if domain == "target":
            th = m * math.pi / 2
            x[:, 1], x[:, 2] = s[:, 1] * math.cos(th), s[:, 1] * math.sin(th)
        return x

    def state_of(self, domain, m, x):
        x = np.asarray(x, dtype=np.float64)
        if domain != "target":
            return x[:, :2]
        th = m * math.pi / 2
        return np.stack([x[:, 0], x[:, 1] * math.cos(th) + x[:, 2] * math.sin(th)], axis=1)


class ActionMapToy(ToyFamily):
    name = "action_map"
    description = ("Changed action map on identical inputs (overlapping: no representation of the input "
                   "can separate the domains); target = source swirl turned by a phase.")
    unit = "m -> target action map spiral(s, 90°·m)"

    def act(self, domain, m, s):
        return spiral(s, PHASE * m if domain == "target" else 0.0)


class SupportToy(ToyFamily):
    name = "support"
    description = "Change of support: target states on a patch shifted along u; same observation and action map."
    unit = f"m -> target u-range [-1 + {SUPPORT_SHIFT_MAX}·m, 1 + {SUPPORT_SHIFT_MAX}·m] (a quarter overlaps at m = 1)"

    def bounds(self, domain, m):
        d = SUPPORT_SHIFT_MAX * m if domain == "target" else 0.0
        return (PATCH[0] + d, PATCH[1] + d), PATCH


TOY_FAMILIES: Registry[ToyFamily] = Registry("toy family")
for _cls in (StudyToy, ShiftToy, RotationToy, ActionMapToy, SupportToy):
    TOY_FAMILIES.register(_cls.name, _cls())


def family_of(pair) -> ToyFamily:
    """The toy family of a toy pair (name or TaskPair); ValueError for other pairs."""
    return TOY_FAMILIES[toy_pair(pair).name.split("/", 1)[1]]


def toy_pair(pair) -> TaskPair:
    """A toy pair given by name (or itself); ValueError for any other pair."""
    found = TOY_PAIRS.get(pair) if isinstance(pair, str) else pair
    if found is None or found.base_task != BASE_TASK:
        raise ValueError(f"{pair if isinstance(pair, str) else pair.name} is not a toy pair")
    return found


def _check(domain: str, magnitude: float) -> None:
    if domain not in ("source", "target"):
        raise ValueError(f"domain must be 'source' or 'target', got {domain!r}")
    if not 0.0 <= magnitude <= 1.0:
        raise ValueError(f"magnitude {magnitude} is outside [0, 1]")


def sample_states(pair, domain: str, magnitude: float, seeds: list[int], support: str | None = None) -> np.ndarray:
    """One state per episode seed, uniform on the support of `support` (default: `domain`)."""
    fam = family_of(pair)
    (u0, u1), (v0, v1) = fam.bounds(support or domain, magnitude)
    out = np.empty((len(seeds), 2))
    for i, seed in enumerate(seeds):
        r = np.random.default_rng(seed).random(2)
        out[i] = (u0 + (u1 - u0) * r[0], v0 + (v1 - v0) * r[1])
    return out


def observe(pair, domain: str, magnitude: float, states: np.ndarray) -> np.ndarray:
    """Observations (n, 3) float32 of states (n, 2) in `domain`."""
    _check(domain, magnitude)
    return family_of(pair).observe(domain, magnitude, np.asarray(states, dtype=np.float64))


def expert_action(pair, domain: str, magnitude: float, states: np.ndarray) -> np.ndarray:
    """The domain's (exact) action (n, 2) float32 at states (n, 2)."""
    _check(domain, magnitude)
    return family_of(pair).act(domain, magnitude, np.asarray(states, dtype=np.float64))


def domain_action(pair, domain: str, magnitude: float, obs: np.ndarray) -> np.ndarray:
    """The exact optimal action (n, 2) of `domain` for its observations `obs` (n, 3) (or (n, T, 3): last step)."""
    x = np.asarray(obs, dtype=np.float64)
    if x.ndim == 3:
        x = x[:, -1]
    fam = family_of(pair)
    _check(domain, magnitude)
    return fam.act(domain, magnitude, fam.state_of(domain, magnitude, x))


def target_action(pair, magnitude: float, obs: np.ndarray) -> np.ndarray:
    """The exact optimal target action (n, 2) for target observations `obs` (n, 3) (or (n, T, 3): last step)."""
    return domain_action(pair, "target", magnitude, obs)


def source_action_at(pair, magnitude: float, obs: np.ndarray) -> np.ndarray:
    """The source map's action at the *state* that target observations `obs` show (for reweighting plots)."""
    x = np.asarray(obs, dtype=np.float64)
    if x.ndim == 3:
        x = x[:, -1]
    fam = family_of(pair)
    return fam.act("source", magnitude, fam.state_of("target", magnitude, x))


def map_position(pair, magnitude: float, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Where each action lies between the source map (0) and the target map (1) at its state.

    The projection `<a − a_s, a_t − a_s> / |a_t − a_s|²` (n,), NaN where the maps coincide
    (|a_t − a_s| < 1e-6).
    """
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim == 3:
        a = a[:, 0]
    a_t = target_action(pair, magnitude, obs).astype(np.float64)
    a_s = source_action_at(pair, magnitude, obs).astype(np.float64)
    d = a_t - a_s
    nd = (d * d).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(nd > 1e-12, ((a - a_s) * d).sum(1) / nd, np.nan)


def toy_dataset(pair, domain: str, magnitude: float, n: int, seed: int, stream: str | None = None) -> Dataset:
    """`n` samples of `domain` as a Dataset of length-1 demos (deterministic for `seed`).

    stream: a tasks.seeds stream (default: the domain's demo stream). `replay` draws its states
    from the target's support in both domains, so the two domains' replay sets are paired.
    """
    from .seeds import demo_stream

    p = toy_pair(pair)
    _check(domain, magnitude)
    if n < 0:
        raise ValueError(f"sample count must be >= 0, got {n}")
    stream = stream or demo_stream(domain)
    mag = magnitude if domain == "target" else 0.0
    seeds = episode_seeds(stream, seed, n)
    states = sample_states(p, domain, magnitude, seeds, support="target" if stream == "replay" else None)
    obs = observe(p, domain, magnitude, states)
    act = expert_action(p, domain, magnitude, states)
    data = Dataset([o[None] for o in obs], [a[None] for a in act], TOY_LAYOUT,
                   rewards=[np.ones(1, np.float32) for _ in range(n)], episode_seeds=list(seeds))
    data.attrs = {
        "pair": p.name, "pair_version": p.version, "base_task": BASE_TASK, "domain": domain,
        "magnitude": mag, "gaps": [], "expert": "toy-exact", "expert_noise": 0.0, "seed": seed,
        "stream": stream, "tried": n, "kept": n,
        "env_args": {"env_name": "toy", "type": 0,
                     "env_kwargs": {"pair": p.name, "domain": domain, "magnitude": mag}},
    }
    return data


def test_inputs(pair, magnitude: float, n: int, seed: int, stream: str = "test",
                domain: str = "target") -> np.ndarray:
    """`n` observations (n, 3) of `domain` from the evaluation stream for `seed` (disjoint from every demo)."""
    return np.concatenate(toy_dataset(pair, domain, magnitude, n, seed, stream).obs)


test_inputs.__test__ = False  # not a pytest test


def action_error(pair, magnitude: float, obs: np.ndarray, actions: np.ndarray, domain: str = "target") -> np.ndarray:
    """Per-input L2 distance (n,) of actions (n, 2) or chunks (n, H, 2) (first step) to the domain's optimal action."""
    a = np.asarray(actions, dtype=np.float64)
    if a.ndim == 3:
        a = a[:, 0]
    return np.linalg.norm(a - domain_action(pair, domain, magnitude, obs), axis=1)


# `toy/<family>` for every toy family, in registry order (tasks.pairs registers them).
TOY_PAIRS: dict[str, TaskPair] = {
    f"toy/{name}": TaskPair(f"toy/{name}", BASE_TASK, target=Domain("target"), version=PAIR_VERSION,
                            description=f"{fam.description} Magnitude: {fam.unit}. "
                                        f"Success: action error < {SUCCESS_THRESHOLD}.",
                            n_target=N_TARGET, n_source=N_SOURCE, obs="lowdim", tags=("toy", name))
    for name, fam in TOY_FAMILIES.items()}

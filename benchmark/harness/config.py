"""Run configuration, size profiles and the content hash that names a run."""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from benchmark import __version__ as SUITE_VERSION

EVAL_SPLITS = ("test", "validation")  # `tasks.seeds` streams a run may be evaluated on
PRECISIONS = ("fp32", "bf16")  # training arithmetic: fp32, or bf16 autocast of the forward pass and loss
AUTOCAST_DEVICES = ("cpu", "cuda")  # device types torch autocasts to bf16


@dataclass(frozen=True)
class Profile:
    """A named size: training, demos and evaluation scaled together."""

    steps: int
    """Training steps (one optimizer update each)."""
    episodes: int
    """Evaluation episodes per domain (test start states)."""
    demo_scale: float
    """Multiplier on the pair's default N and M (at least 1 demo each)."""
    width: int
    """Noise-network width."""
    depth: int
    """Residual blocks of the noise network."""
    z_dim: int
    """Encoder output size (the representation z)."""
    replay_episodes: int
    """Paired replay episodes per domain for the representation metrics (the probes' grouped folds hold
    out at least 2 of them each where there are 4 or more)."""
    ckpt_every: int
    """Steps between checkpoints (resume points)."""


PROFILES: dict[str, Profile] = {
    "smoke": Profile(steps=40, episodes=4, demo_scale=0.1, width=32, depth=1, z_dim=16, replay_episodes=4, ckpt_every=20),
    "quick": Profile(steps=1500, episodes=20, demo_scale=1.0, width=256, depth=3, z_dim=64, replay_episodes=10, ckpt_every=500),
    "full": Profile(steps=20000, episodes=50, demo_scale=1.0, width=512, depth=3, z_dim=64, replay_episodes=12, ckpt_every=2000),
    # toy pairs (tasks/toy.py): "episodes" are test inputs, "replay_episodes" paired inputs; seconds per run
    "toy": Profile(steps=1000, episodes=256, demo_scale=1.0, width=64, depth=2, z_dim=16, replay_episodes=256,
                   ckpt_every=500),
    "toy_full": Profile(steps=2000, episodes=256, demo_scale=1.0, width=64, depth=2, z_dim=16, replay_episodes=256,
                        ckpt_every=1000),
}


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's numbers (hashed), plus how many evaluation workers (not hashed)."""

    pair: str
    """A registered pair (`lift/dynamics`) or a factor pair (`lift+object_mass@0.5+obs_bias`,
    `tasks.pairs`); stored as the pair's canonical name, so every spelling of a factor set is one run."""
    method: str = "cotrain"
    """Key of `baselines.METHODS`: a registered name, an entry point of `cotrain_bench.methods`, or
    `package.module:Class`."""
    magnitude: float = 1.0
    """Gap magnitude of the target domain (the source is magnitude 0)."""
    n_target: int | None = None
    """Target demos N (default: the pair's, scaled by the profile)."""
    n_source: int | None = None
    """Source demos M (default: the pair's, scaled by the profile)."""
    seed: int = 0
    """Run seed: derives the demo, training, replay and evaluation streams."""
    profile: str = "quick"
    """Key of PROFILES."""
    hparams: tuple[tuple[str, Any], ...] = ()
    """Method hyperparameter overrides (`--set k=v`), sorted; `w` is the target batch fraction."""
    network: str = "mlp"
    """Noise network: `mlp` or `unet`."""
    backend: str = "fast"
    """Simulation backend for demos and evaluation: `fast` (default; matches `robosuite` within
    the tolerance tests/test_fast.py states) or `robosuite` (the reference). Image pairs always run
    on `robosuite` (the fast backend does not render): `fast` is replaced by it for them, so the
    run's config and hash name the backend that really ran."""
    checkpoint_rule: str = "last"
    """`last`, or `best_val` (best target validation loss, named as such in the record)."""
    episodes: int | None = None
    """Evaluation episodes (default: the profile's)."""
    steps: int | None = None
    """Training steps (default: the profile's; hashed only where it departs from the profile's, so a
    run at the profile's length is the same run either way). `cotrain calibrate` sets it."""
    eval_split: str = "test"
    """Start states of the evaluation: `test` (what every reported number uses) or `validation` (for
    choosing hyperparameters and recipes, never for reporting: `tasks.seeds`' validation stream, whose
    first states also start the validation demos, which only ever give a loss, never a gradient; the
    target domain only)."""
    device: str = "cpu"
    """Torch device (hashed: another device sums in another order, so its numbers differ)."""
    workers: int = field(default=1, compare=False)
    """Evaluation worker processes (not hashed: each episode depends only on its own seed)."""
    threads: int = 1
    """Torch CPU threads for training (hashed: the thread count changes the order of floating-point
    sums, so runs differ in the last bits, which adversarial training can amplify into a different
    success; a run is bitwise reproducible at the same thread count and device)."""
    precision: str = "fp32"
    """Training arithmetic: `fp32`, or `bf16` (forward pass and loss under bf16 autocast; the optimizer, EMA,
    validation, evaluation and metrics stay fp32). Hashed only when `bf16`, so fp32 runs keep their ids."""
    log_csv: bool = field(default=False, compare=False)
    """Also write the training scalars as `train_log.csv` (not hashed: logging does not change a run)."""

    def __post_init__(self) -> None:
        import torch

        from tasks import BASE_TASKS, check_magnitude, get_pair
        from baselines import METHODS
        from baselines.methods import validate_hparams

        for name in ("pair", "method", "profile", "network", "backend", "checkpoint_rule", "eval_split", "device",
                     "precision"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, got {getattr(self, name)!r}")
        object.__setattr__(self, "pair", get_pair(self.pair).name)
        METHODS[self.method]
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; known: {', '.join(PROFILES)}")
        if not is_number(self.magnitude) or not 0.0 <= self.magnitude <= 1.0:
            raise ValueError(f"magnitude {self.magnitude!r} is outside [0, 1]")
        check_magnitude(self.pair, self.magnitude)
        _check_int("seed", self.seed, 0)
        for name in ("n_target", "n_source", "episodes", "steps"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 1)
        if self.steps == self.size.steps:
            object.__setattr__(self, "steps", None)
        if self.network not in ("mlp", "unet"):
            raise ValueError(f"network must be 'mlp' or 'unet', got {self.network!r}")
        if self.backend not in ("fast", "robosuite"):
            raise ValueError(f"backend must be 'fast' or 'robosuite', got {self.backend!r}")
        if get_pair(self.pair).obs == "image":  # the fast backend does not render
            object.__setattr__(self, "backend", "robosuite")
        if self.eval_split not in EVAL_SPLITS:
            raise ValueError(f"eval_split must be one of {', '.join(EVAL_SPLITS)}, got {self.eval_split!r}")
        if self.eval_split != "test" and not BASE_TASKS[get_pair(self.pair).base_task].simulated:
            raise ValueError(f"toy pairs are evaluated on their own test inputs only, "
                             f"got eval_split={self.eval_split!r}")
        if self.checkpoint_rule not in ("last", "best_val"):
            raise ValueError(f"checkpoint_rule must be 'last' or 'best_val', got {self.checkpoint_rule!r}")
        _check_int("workers", self.workers, 1)
        _check_int("threads", self.threads, 1)
        try:
            torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(f"device {self.device!r} is not a torch device ({err})") from None
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.precision == "bf16" and torch.device(self.device).type not in AUTOCAST_DEVICES:
            raise ValueError(f"precision 'bf16' autocasts on {' or '.join(AUTOCAST_DEVICES)} devices only, "
                             f"got device {self.device!r}")
        object.__setattr__(self, "hparams", tuple(sorted(dict(self.hparams).items())))
        w = dict(self.hparams).get("w")
        if is_number(w) and METHODS[self.method].mixes and not 0.0 < w < 1.0:
            raise ValueError(f"w={w}: co-training needs 0 < w < 1 (w = 0 is source_only, w = 1 is target_only)")
        validate_hparams(self.method, dict(self.hparams))

    @property
    def size(self) -> Profile:
        return PROFILES[self.profile]

    def resolved(self) -> "RunConfig":
        """Demo counts and episodes filled in from the pair and profile."""
        from tasks import get_pair

        pair, size = get_pair(self.pair), self.size
        return replace(
            self,
            n_target=self.n_target if self.n_target is not None else max(1, round(pair.n_target * size.demo_scale)),
            n_source=self.n_source if self.n_source is not None else max(1, round(pair.n_source * size.demo_scale)),
            episodes=self.episodes if self.episodes is not None else size.episodes)

    def method_hparams(self) -> dict[str, Any]:
        """The method's defaults updated with the overrides; `w` resolved to the default ratio if unset.

        The overrides were checked when the config was made (names, types, limits, and a co-training
        `w` strictly between 0 and 1: w = 0 and 1 are `source_only` and `target_only`).
        """
        from baselines import METHODS
        from baselines.data import default_ratio
        from baselines.methods import resolve_hparams

        cfg = self.resolved()
        hp = resolve_hparams(cfg.method, dict(cfg.hparams))
        if not METHODS[cfg.method].mixes:
            return {**hp, "w": None}
        if hp.get("w") is None:
            hp["w"] = default_ratio(cfg.n_target, cfg.n_source)
        return hp

    def hashed_dict(self) -> dict[str, Any]:
        """The fields that change the numbers (hyperparameters resolved), with the pair and expert
        versions, profile sizes and suite version, the method's version where above 0, and a method from
        outside the suite's identity (its import path and source digest, `baselines.plugins`)."""
        from baselines import METHODS
        from tasks import get_pair
        from tasks.experts import EXPERT_VERSION

        cfg = self.resolved()
        out = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.compare}
        if out["steps"] is None:  # the profile's length: run ids as before `steps` existed
            del out["steps"]
        if out["precision"] == "fp32":  # the default arithmetic: run ids as before `precision` existed
            del out["precision"]
        out["hparams"] = cfg.method_hparams()
        out["pair_version"] = get_pair(cfg.pair).version
        out["expert_version"] = EXPERT_VERSION
        out["profile_size"] = asdict(cfg.size)
        out["suite_version"] = SUITE_VERSION
        if METHODS[cfg.method].version:  # a method's revision: its version-0 runs keep their ids
            out["method_version"] = METHODS[cfg.method].version
        identity = METHODS.identity(cfg.method)
        if identity is not None:  # in-tree methods: none, so their run ids stay as they were
            out["method_identity"] = identity
        return out

    def run_id(self) -> str:
        """Content hash of `hashed_dict()` (12 hex digits): the run's directory name."""
        return content_hash(self.hashed_dict())

    def to_json(self) -> dict[str, Any]:
        cfg = self.resolved()
        out = self.hashed_dict()
        out.update(device=cfg.device, workers=cfg.workers, threads=cfg.threads, run_id=self.run_id())
        return out


def content_hash(obj: Any) -> str:
    """Stable 12-hex-digit hash of a JSON-serializable object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_int(name: str, value: Any, least: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def parse_set(items: list[str]) -> dict[str, Any]:
    """`["w=0.1", "adversarial_weight=0.05"]` -> {"w": 0.1, ...}; values parsed as JSON where possible (the
    method checks them: `RunConfig`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        if key in out:
            raise ValueError(f"--set {key} is given twice")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out

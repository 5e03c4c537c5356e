"""Do the image encoders of `lift/visual-48px`'s source policy locate the cube? (a diagnostic of this check)

A ridge probe (5-fold cross-validated R^2, the best of 13 penalties) from each camera's encoder features to the
cube's x and y over 120 validation start states of run seed 7 (a seed no run of the check uses), in the source:
the trained encoder with its evaluation's centre crop, the same encoder under its training's random crops, and
the encoder at its initialization. Needs the run's checkpoint (checkpoints stay on the machine that trained them;
the check's 1500-step run at version 4 is `results/calibration/runs/5c9a33777084`):

    python results/calibration/lift_visual-48px_v4/encoder_probe.py results/calibration/runs/5c9a33777084
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from baselines import load_checkpoint
from baselines.policy import DiffusionPolicy
from baselines.vision import images_to_tensor
from tasks import make_env
from tasks.seeds import episode_seeds

PAIR, STATES, PROBE_SEED, FOLDS = "lift/visual-48px", 120, 7, 5


def cv_r2(x: np.ndarray, y: np.ndarray) -> float:
    """Cross-validated R^2 of ridge regression of y on x (features standardized on the training folds)."""
    fold = np.arange(len(y)) % FOLDS
    best = -np.inf
    for alpha in np.logspace(-3, 3, 13):
        pred = np.empty_like(y)
        for f in range(FOLDS):
            train, test = fold != f, fold == f
            mu, sd = x[train].mean(0), x[train].std(0) + 1e-8
            a, b = (x[train] - mu) / sd, (x[test] - mu) / sd
            coef = a.T @ np.linalg.solve(a @ a.T + alpha * np.eye(len(a)), y[train] - y[train].mean())
            pred[test] = b @ coef + y[train].mean()
        best = max(best, 1.0 - ((pred - y) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    return best


def features(encoder: torch.nn.Module, frames: np.ndarray, n_obs_steps: int, random_crop: bool) -> np.ndarray:
    encoder.train(random_crop)
    with torch.no_grad():
        out = encoder(images_to_tensor(np.repeat(frames[:, None], n_obs_steps, 1))).numpy()
    encoder.eval()
    return out.astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="a finished run folder of the pair, with its checkpoint")
    args = parser.parse_args()
    torch.manual_seed(0)
    policy = load_checkpoint(str(Path(args.run_dir) / "checkpoint")).policy
    policy.eval()
    fresh = DiffusionPolicy(policy.config).eval()
    env = make_env(PAIR, "source", obs="image")
    frames, xy = {key: [] for key in policy.config.image_keys}, []
    for seed in episode_seeds("validation", PROBE_SEED, STATES):
        obs, _ = env.reset(seed=seed)
        xy.append(env.unwrapped.last_obs["cube_pos"][:2].copy())
        for key in frames:
            frames[key].append(obs[key])
    env.close()
    xy = np.array(xy)
    print(f"cube xy spread (SD, cm): {100 * xy[:, 0].std():.2f}, {100 * xy[:, 1].std():.2f}")
    for key, stack in frames.items():
        stack = np.stack(stack)
        for name, encoder, crop in (("trained, centre crop", policy.image_encoders[key], False),
                                    ("trained, random crops", policy.image_encoders[key], True),
                                    ("at initialization", fresh.image_encoders[key], False)):
            x = features(encoder, stack, policy.config.n_obs_steps, crop)
            print(f"{key:9s} {name:22s} R^2 x {cv_r2(x, xy[:, 0]):.2f}  y {cv_r2(x, xy[:, 1]):.2f}")


if __name__ == "__main__":
    main()

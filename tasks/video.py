"""`write_episode_video`: an episode's rendered frames as a video file.

Gymnasium's `RecordVideo` needs moviepy, which the suite does not install; this writes with what
robosuite already brings: `.mp4` through OpenCV (MPEG-4 part 2, `mp4v`: small, plays in video
players, not in every browser) and `.gif` through Pillow (larger, plays everywhere). Collect the
frames with `render_mode="rgb_array_list"` (`env.render()` then returns the episode's frames) or by
calling `render()` after each step.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .env import CONTROL_FREQ

SUFFIXES = (".mp4", ".gif")


def write_episode_video(frames: Sequence[np.ndarray], path: str | Path, fps: float = CONTROL_FREQ) -> Path:
    """Write (H, W, 3) uint8 RGB `frames` to `path` (`.mp4` or `.gif`) at `fps` frames per second; return it."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise ValueError(f"video path must end in one of {SUFFIXES}, got {path.name!r}")
    if not frames:
        raise ValueError("no frames to write")
    shape = frames[0].shape
    if len(shape) != 3 or shape[2] != 3 or any(f.shape != shape or f.dtype != np.uint8 for f in frames):
        raise ValueError(f"frames must all be (H, W, 3) uint8 like the first, {shape} {frames[0].dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return path
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (shape[1], shape[0]))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} with the mp4v codec")
    try:
        for frame in frames:
            writer.write(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV takes BGR
    finally:
        writer.release()
    return path

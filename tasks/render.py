"""Offscreen rendering of a robosuite scene: the renderer and the geom groups drawn, shared by every env's frames
(`CotrainEnv.render`'s view of the whole scene and `ImageEnv`'s camera observations)."""
from __future__ import annotations

import atexit

import mujoco

from .core import IMAGE_SIZE

# Geom groups drawn, as robosuite's offscreen renderer draws them (group 0 holds collision geoms).
GEOM_GROUPS = (0, 1, 1, 0, 0, 0)
# Turned off by the cheap settings, with multisampling (`vis.quality.offsamples = 0`).
CHEAP_OFF = (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION, mujoco.mjtRndFlag.mjRND_SKYBOX)


def make_renderer(model: mujoco.MjModel, size: int = IMAGE_SIZE, cheap: bool = True) -> mujoco.Renderer:
    """An offscreen (size, size) renderer of `model`; cheap: no shadows, reflections, skybox or multisampling.

    One still open at exit is closed before the GL display goes (else it prints an EGL error).
    """
    samples = model.vis.quality.offsamples
    if cheap:
        model.vis.quality.offsamples = 0  # read once, when the GL context is made
    renderer = mujoco.Renderer(model, size, size)
    model.vis.quality.offsamples = samples
    atexit.register(renderer.close)  # after the GL backend's own exit hook, so it runs first
    for flag in CHEAP_OFF if cheap else ():
        renderer.scene.flags[flag] = False
    return renderer

"""Image observations and visual gap factors for the robosuite pairs.

`ImageEnv` (what `make_env(..., obs="image")` returns) adds camera images to the flat
low-dimensional layout. Visual factors edit only rendering fields of the MuJoCo model (textures,
materials, lights, cameras, once after construction) or draw extra geoms into the rendered scene
(distractors); they never touch what the physics reads, so both domains step identically.
Factor targets (colours, patterns, angles) are fixed constants or drawn from fixed seeds, so a
domain looks the same in every process; distractor places are drawn per episode from its seed.
Frames are `TaskPair.image_size` square: IMAGE_SIZE (84), or the size a pair's name states
(`lift/visual-48px`, SMALL_SIZES: the same pair rendered smaller, for budgets where 84x84 costs too much).
"""
from __future__ import annotations

import atexit

import gymnasium as gym
import mujoco
import numpy as np

from common.registry import Registry

from .base_tasks import BASE_TASKS
from .core import IMAGE_CAMERAS, IMAGE_PAIR_VERSION, IMAGE_SIZE, Domain, GapFactor, TaskPair
from .env import CotrainEnv
from .gaps import GapEffect
from .render import GEOM_GROUPS, make_renderer

AGENTVIEW = "agentview"


class ImageEnv(CotrainEnv):
    """A `CotrainEnv` that also observes camera images.

    Observation (gymnasium Dict, the same keys and shapes in both domains):
    "lowdim": float32 (D,), the flat layout `self.layout` (an image pair's: the robot's keys alone,
        `tasks.base_tasks.pair_layout`);
    "agentview": uint8 (S, S, 3) with S = pair.image_size, robosuite's agent-view camera, rows top to bottom;
    "wrist": the same from the eye-in-hand camera (IMAGE_CAMERAS).
    cheap: render without shadows, reflections, skybox and multisampling (much faster on a CPU).
    """

    def __init__(self, pair: TaskPair, domain: str = "source", magnitude: float = 1.0, seed: int | None = None,
                 cheap: bool = True, render_mode: str | None = None):
        super().__init__(pair, domain, magnitude, seed, render_mode)
        size = pair.image_size
        self.renderer = make_renderer(self.sim.model._model, size, cheap)
        names = {AGENTVIEW: AGENTVIEW, "wrist": f"{self.rs.robots[0].robot_model.naming_prefix}eye_in_hand"}
        self.cameras = {key: names[key] for key in IMAGE_CAMERAS}
        self.scene_option = mujoco.MjvOption()
        self.scene_option.geomgroup[:] = GEOM_GROUPS
        image = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict({"lowdim": self.observation_space,
                                                  **{key: image for key in self.cameras}})

    def render_camera(self, camera: str = AGENTVIEW, renderer: mujoco.Renderer | None = None) -> np.ndarray:
        """(H, W, 3) uint8 image of `camera` in the current state, with the visual factors' scene additions."""
        renderer = renderer or self.renderer
        renderer.update_scene(self.sim.data._data, camera=camera, scene_option=self.scene_option)
        for effect in self.effects:
            if isinstance(effect, VisualEffect):
                effect.on_render(self, renderer.scene)
        return renderer.render()

    def _observe(self) -> dict[str, np.ndarray]:
        lowdim = super()._observe()
        return {"lowdim": lowdim, **{key: self.render_camera(cam) for key, cam in self.cameras.items()}}

    def close(self):
        self.renderer.close()
        atexit.unregister(self.renderer.close)
        super().close()


# ---------------------------------------------------------------- visual gap factors
class VisualEffect(GapEffect):
    """A gap factor that changes only what cameras see."""

    family = "visual"

    def on_render(self, env: ImageEnv, scene: mujoco.MjvScene) -> None:
        """Add geoms to the scene of one camera image before it is drawn."""


def _blend(old: np.ndarray, new: np.ndarray, magnitude: float) -> np.ndarray:
    return (1.0 - magnitude) * old + magnitude * new


def _texture(model: mujoco.MjModel, tex: int) -> np.ndarray:
    """Writable (H, W, channels) uint8 view of texture `tex`'s pixels."""
    h, w, c = model.tex_height[tex], model.tex_width[tex], model.tex_nchannel[tex]
    return model.tex_data[model.tex_adr[tex]:model.tex_adr[tex] + h * w * c].reshape(h, w, c)


def _coloured_by(model: mujoco.MjModel, geoms: np.ndarray) -> tuple[set[int], set[int], list[int]]:
    """What gives `geoms` their colour: (textures, untextured materials, material-less geoms)."""
    textures, materials, bare = set(), set(), []
    for g in geoms:
        mat = int(model.geom_matid[g])
        tex = int(model.mat_texid[mat, mujoco.mjtTextureRole.mjTEXROLE_RGB]) if mat >= 0 else -1
        if tex >= 0:
            textures.add(tex)
        elif mat >= 0:
            materials.add(mat)
        else:
            bare.append(int(g))
    return textures, materials, bare


def _recolour(model: mujoco.MjModel, geoms: np.ndarray, colour_map, magnitude: float) -> None:
    """Blend the colour of `geoms` toward `colour_map(rgb)` (rgb in [0, 1], shape (..., 3))."""
    textures, materials, bare = _coloured_by(model, geoms)
    for tex in textures:
        pixels = _texture(model, tex)[..., :3]
        rgb = pixels / 255.0
        pixels[:] = np.rint(255.0 * np.clip(_blend(rgb, colour_map(rgb), magnitude), 0.0, 1.0))
    for mat in materials:
        model.mat_rgba[mat, :3] = _blend(model.mat_rgba[mat, :3], colour_map(model.mat_rgba[mat, :3]), magnitude)
    for g in bare:
        model.geom_rgba[g, :3] = _blend(model.geom_rgba[g, :3], colour_map(model.geom_rgba[g, :3]), magnitude)


def _tiles(seed: int, spread: float) -> np.ndarray:
    """(TILES, TILES, 3) colours from `seed`: grey levels in [0.35, 0.85], each channel moved by up to `spread`."""
    rng = np.random.default_rng(seed)
    grey = rng.uniform(0.35, 0.85, (TILES, TILES, 1))
    return np.clip(grey + rng.uniform(-spread, spread, (TILES, TILES, 3)), 0.0, 1.0)


def _retexture(model: mujoco.MjModel, geoms: np.ndarray, tiles: np.ndarray, magnitude: float) -> None:
    """Blend every texture of `geoms` toward a mosaic of the (n, n, 3) `tiles` stretched over it."""
    textures, _, _ = _coloured_by(model, geoms)
    if not textures:
        raise ValueError("texture gap factor: the geoms it acts on have no texture")
    n = len(tiles)
    for tex in sorted(textures):
        pixels = _texture(model, tex)[..., :3]
        h, w = pixels.shape[:2]
        mosaic = tiles[np.arange(h) * n // h][:, np.arange(w) * n // w]
        pixels[:] = np.rint(255.0 * _blend(pixels / 255.0, mosaic, magnitude))


def _complement(rgb: np.ndarray) -> np.ndarray:
    """The colour rotated 180 degrees about the grey axis: 2 * mean - rgb, clipped (red -> cyan)."""
    return np.clip(2.0 * rgb.mean(-1, keepdims=True) - rgb, 0.0, 1.0)


def _object_geoms(env: CotrainEnv) -> np.ndarray:
    """Geoms of every task object's body subtree."""
    model = env.sim.model._model
    roots = [model.body(b).id for b in env.task.bodies]
    return np.flatnonzero(np.isin(model.body_rootid[model.geom_bodyid], roots))


def _table_geoms(env: CotrainEnv) -> np.ndarray:
    return np.array([env.sim.model._model.geom("table_visual").id])


TABLE_TINT = (0.55, 0.40, 0.28)  # a mid brown, times the texture's grey level
TILES, OBJECT_TEXTURE_SEED, TABLE_TEXTURE_SEED = 6, 7, 11
LIGHT_TILT_DEG = 75.0
LIGHT_DIM = 0.6
WARM_LIGHT = (1.0, 0.72, 0.42)
ORBIT_DEG = 20.0
FOV_WIDEN_DEG = 20.0


class ObjectColour(VisualEffect):
    unit = ("every task object's colour (texture pixels, else material or geom rgba) blended toward its "
            "complement about grey, 2 * mean(rgb) - rgb (red -> cyan, brass -> blue), fully at m = 1")

    def on_build(self, env):
        _recolour(env.sim.model._model, _object_geoms(env), _complement, self.magnitude)


class ObjectTexture(VisualEffect):
    unit = (f"every task object's texture blended toward a mosaic of {TILES}x{TILES} random-colour tiles "
            f"(seed {OBJECT_TEXTURE_SEED}), fully at m = 1")

    def on_build(self, env):
        _retexture(env.sim.model._model, _object_geoms(env), _tiles(OBJECT_TEXTURE_SEED, 0.4), self.magnitude)


class TableColour(VisualEffect):
    unit = f"table-top texture blended toward its grey level x {TABLE_TINT} (white -> brown), fully at m = 1"

    def on_build(self, env):
        tint = np.array(TABLE_TINT)
        _recolour(env.sim.model._model, _table_geoms(env), lambda rgb: rgb.mean(-1, keepdims=True) * tint,
                  self.magnitude)


class TableTexture(VisualEffect):
    unit = (f"table-top texture blended toward a mosaic of {TILES}x{TILES} near-grey tiles "
            f"(seed {TABLE_TEXTURE_SEED}), fully at m = 1")

    def on_build(self, env):
        _retexture(env.sim.model._model, _table_geoms(env), _tiles(TABLE_TEXTURE_SEED, 0.08), self.magnitude)


class LightDirection(VisualEffect):
    unit = f"every scene light's direction rotated {LIGHT_TILT_DEG:g} deg x m about the world x axis"

    def on_build(self, env):
        a = np.deg2rad(LIGHT_TILT_DEG * self.magnitude)
        rot = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])
        model = env.sim.model._model
        model.light_dir[:] = model.light_dir @ rot.T


def _scale_lights(model: mujoco.MjModel, gain: np.ndarray) -> None:
    """Multiply the ambient, diffuse and specular colour of every light and the headlight by `gain` (3,)."""
    for colours in (model.light_ambient, model.light_diffuse, model.light_specular):
        colours *= gain
    head = model.vis.headlight
    head.ambient, head.diffuse, head.specular = head.ambient * gain, head.diffuse * gain, head.specular * gain


class LightIntensity(VisualEffect):
    unit = f"every light's and the headlight's colour x (1 - {LIGHT_DIM:g} m): {1 - LIGHT_DIM:.0%} at m = 1"

    def on_build(self, env):
        _scale_lights(env.sim.model._model, np.full(3, 1.0 - LIGHT_DIM * self.magnitude))


class LightColour(VisualEffect):
    unit = f"every light's and the headlight's colour x {WARM_LIGHT} (warm light) at m = 1, blended linearly"

    def on_build(self, env):
        _scale_lights(env.sim.model._model, _blend(np.ones(3), np.array(WARM_LIGHT), self.magnitude))


class CameraPose(VisualEffect):
    unit = (f"agent-view camera orbited {ORBIT_DEG:g} deg x m about the vertical axis through the table "
            "centre (its position and orientation turn together)")

    def on_build(self, env):
        model = env.sim.model._model
        cam = model.camera(AGENTVIEW).id
        if model.cam_bodyid[cam] != 0:
            raise ValueError("camera_pose: the agent-view camera is expected in the world frame")
        a = np.deg2rad(ORBIT_DEG * self.magnitude)
        centre = np.array([*env.rs.table_offset[:2], 0.0])
        rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
        model.cam_pos[cam] = centre + rot @ (model.cam_pos[cam] - centre)
        turn = np.array([np.cos(a / 2), 0.0, 0.0, np.sin(a / 2)])
        quat = np.empty(4)
        mujoco.mju_mulQuat(quat, turn, model.cam_quat[cam].astype(np.float64))
        model.cam_quat[cam] = quat


class CameraFov(VisualEffect):
    unit = f"agent-view camera's vertical field of view + {FOV_WIDEN_DEG:g} deg x m (robosuite's is 45 deg)"

    def on_build(self, env):
        model = env.sim.model._model
        model.cam_fovy[model.camera(AGENTVIEW).id] += FOV_WIDEN_DEG * self.magnitude


# Distractor shapes, in order of appearance: (geom type, size, rgba, height of the centre above the table).
DISTRACTOR_SHAPES = (
    (mujoco.mjtGeom.mjGEOM_BOX, (0.025, 0.025, 0.025), (0.95, 0.8, 0.1, 1.0), 0.025),
    (mujoco.mjtGeom.mjGEOM_SPHERE, (0.03, 0.03, 0.03), (0.2, 0.3, 0.9, 1.0), 0.03),
    (mujoco.mjtGeom.mjGEOM_CYLINDER, (0.022, 0.04, 0.0), (0.8, 0.2, 0.8, 1.0), 0.04),
    (mujoco.mjtGeom.mjGEOM_BOX, (0.045, 0.015, 0.015), (0.1, 0.7, 0.3, 1.0), 0.015),
)
DISTRACTOR_AREA = 0.25  # metres: placed in [-A, A]^2 around the table centre
DISTRACTOR_CLEARANCE = 0.12  # metres from task objects and fixtures
DISTRACTOR_SPACING = 0.08  # metres between distractors
FIXTURES = {"square": ("peg1", "peg2")}  # static task bodies distractors keep clear of


class Distractors(VisualEffect):
    max_steps = len(DISTRACTOR_SHAPES)
    places: tuple[np.ndarray, ...] = ()  # centres, set per episode by on_reset
    unit = (f"round({len(DISTRACTOR_SHAPES)} m) coloured primitives (box, sphere, cylinder, bar) drawn on the "
            f"table, placed per episode from its seed in a {2 * DISTRACTOR_AREA:g} m square, "
            f"{DISTRACTOR_CLEARANCE:g} m clear of task objects; drawn only, never simulated (no contacts)")

    def on_reset(self, env, rng):
        data = env.sim.data._data
        model = env.sim.model._model
        bodies = [model.body(b).id for b in env.task.bodies + FIXTURES.get(env.task.name, ())]
        avoid = [data.xpos[b, :2] for b in bodies]
        centre = np.asarray(env.rs.table_offset, dtype=float)
        places: list[np.ndarray] = []
        for _, _, _, height in DISTRACTOR_SHAPES[:self.steps]:
            for _ in range(1000):
                xy = centre[:2] + rng.uniform(-DISTRACTOR_AREA, DISTRACTOR_AREA, 2)
                if (all(np.linalg.norm(xy - p) > DISTRACTOR_CLEARANCE for p in avoid)
                        and all(np.linalg.norm(xy - p[:2]) > DISTRACTOR_SPACING for p in places)):
                    break
            else:
                raise RuntimeError("distractors: no free place on the table after 1000 draws")
            places.append(np.array([*xy, centre[2] + height]))
        self.places = tuple(places)

    def on_render(self, env, scene):
        for (kind, size, rgba, _), pos in zip(DISTRACTOR_SHAPES, self.places):
            if scene.ngeom >= scene.maxgeom:
                raise RuntimeError("distractors: the scene has no room for more geoms")
            mujoco.mjv_initGeom(scene.geoms[scene.ngeom], kind, np.array(size, float), pos, np.eye(3).ravel(),
                                np.array(rgba, np.float32))
            scene.ngeom += 1


VISUAL_FACTORS: dict[str, type[VisualEffect]] = {
    "object_color": ObjectColour,
    "object_texture": ObjectTexture,
    "table_color": TableColour,
    "table_texture": TableTexture,
    "light_direction": LightDirection,
    "light_intensity": LightIntensity,
    "light_color": LightColour,
    "camera_pose": CameraPose,
    "camera_fov": CameraFov,
    "distractors": Distractors,
}

# The factors of the named `<task>/visual` pairs, each at magnitude 1 (the rest serve custom pairs and ablations).
VISUAL_FAMILY = ("object_color", "table_texture", "light_direction", "light_color", "camera_pose")
VISUAL_TASKS = ("lift", "stack", "square")
VISUAL_DYNAMICS_TASKS = ("lift", "square")
# Image pairs also registered with smaller frames, as `<pair>-<size>px` (tests/test_image_size.py checks that a
# raw-pixel probe still tells their domains apart).
SMALL_SIZES = {"lift/visual": (64, 48)}


def register_visual_factors(registry: Registry) -> None:
    """Add every visual factor to the gap-factor registry (tasks.pairs calls this once)."""
    for name, effect in VISUAL_FACTORS.items():
        registry.register(name, effect)


def sized_name(name: str, size: int) -> str:
    """The name of pair `name` rendered at `size` x `size`: `lift/visual-48px` (`name` itself at IMAGE_SIZE)."""
    return name if size == IMAGE_SIZE else f"{name}-{size}px"


def visual_pairs(demo_counts: dict[str, tuple[int, int]], dynamics: tuple[str, ...]) -> list[TaskPair]:
    """`<task>/visual` for every task of VISUAL_TASKS, `<task>/visual_dynamics` (visual + `dynamics`
    factors) for VISUAL_DYNAMICS_TASKS, all with image observations at IMAGE_SIZE, and each pair of
    SMALL_SIZES again at its smaller sizes (same factors, demo counts and version; the size is in the name).
    Their low-dimensional stand-ins are `<task>/sensing` and `<task>/sensing_dynamics`. The policy's
    low-dimensional input is the robot's proprioception only (`tasks.base_tasks.pair_layout`): with the object poses
    in it, a policy could ignore the frames, and the visual gap with them. Experts still act on the privileged
    state.
    """
    pairs = []
    for family, tasks, factors, kind, stand_in in (
            ("visual", VISUAL_TASKS, VISUAL_FAMILY, "visual only", "sensing"),
            ("visual_dynamics", VISUAL_DYNAMICS_TASKS, VISUAL_FAMILY + dynamics, "visual + physics",
             "sensing_dynamics")):
        for task in tasks:
            n, m = demo_counts[task]
            for size in (IMAGE_SIZE, *SMALL_SIZES.get(f"{task}/{family}", ())):
                pairs.append(TaskPair(
                    sized_name(f"{task}/{family}", size), task,
                    target=Domain("target", tuple(GapFactor(f) for f in factors)), n_target=n, n_source=m,
                    obs="image", tags=tuple(family.split("_")), image_size=size,
                    version=BASE_TASKS[task].version + IMAGE_PAIR_VERSION,
                    description=f"{BASE_TASKS[task].description} Images ({size}x{size}, agent view and wrist) and the "
                                f"robot's proprioception (no object pose). Target: "
                                f"{family.replace('_', ' + ')} gap ({', '.join(factors)}). "
                                f"Study gap kind: {kind}; low-dimensional stand-in: {task}/{stand_in}."))
    return pairs

"""Generated camera-like driving scenes with exact box labels (the package's own data set).

Contract:

- ``SceneGenerator(config).render(seed, time_s=0.0)`` returns a ``Scene``: ``image`` an (H, W, 3)
  uint8 BGR frame (default 1920x1280), ``objects`` the labelled objects and ``ignored`` the
  objects too occluded (or too small) to label. Same seed and time -> byte-identical frame.
- A box is ``(x0, y0, x1, y1)`` float pixel coordinates in the frame, x1/y1 exclusive: the tight
  bounds of the object's rendered pixels after occlusion by nearer objects, occluders (poles,
  trees, signs, the ego hood) and the frame border, i.e. pixel columns x0 .. x1-1 and rows
  y0 .. y1-1 hold object pixels and each of the four edge rows/columns holds at least one.
  Boxes are measured on the instance map before the photometric effects (blur, noise,
  compression), which smear edges by a pixel or two as a real camera does.
- An object whose visible fraction (visible pixels / pixels it would cover unoccluded inside
  the frame) is below ``config.min_visible``, or whose visible box is smaller than
  ``config.min_box_px`` on a side, goes to ``ignored`` (exported as COCO ``iscrowd`` regions,
  which the evaluator ignores, and left out of training targets).
- Classes: the 8 Autoware labels (``sprites.CLASS_NAMES``), class index = line in label.txt.

A scene is a ``Layout`` (camera, road, buildings, objects with world positions and velocities)
sampled from the seed, drawn at ``time_s``: drawing the same layout at 0.0, 0.1, 0.2 s gives a
coherent 10 Hz sequence (objects move, lane dashes flow past), which is what the rosbag writer
records. Geometry: a pinhole camera at height ``cam_h`` over a flat ground plane; a ground point
(X lateral, z forward) projects to ``u = cx + f X / z``, ``v = horizon + f cam_h / z``.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from . import sprites
from .sprites import (ANIMAL, BICYCLE, BUS, CAR, CLASS_NAMES, MOTORBIKE, PEDESTRIAN, TRUCK,
                      UNKNOWN)

Box = Tuple[float, float, float, float]

#: Relative frequency of each class among sampled objects (label order).
DEFAULT_CLASS_WEIGHTS = (0.07, 0.27, 0.11, 0.09, 0.1, 0.1, 0.19, 0.07)


@dataclass(frozen=True)
class SceneConfig:
    """Size and difficulty knobs of the generator."""

    width: int = 1920
    height: int = 1280
    min_objects: int = 4
    max_objects: int = 16
    #: Objects are placed no farther than where they would be this tall (pixels).
    min_height_px: float = 36.0
    min_visible: float = 0.2
    min_box_px: float = 8.0
    class_weights: Tuple[float, ...] = DEFAULT_CLASS_WEIGHTS
    #: Photometric effects (lighting, blur, noise, compression); off gives the clean render.
    effects: bool = True
    #: Dark ellipse on the ground under each object (outside its box, like a real shadow).
    contact_shadows: bool = True


@dataclass(frozen=True)
class ObjectLabel:
    """One object of a rendered scene."""

    class_id: int
    box: Box
    visible: float
    instance: int

    @property
    def class_name(self) -> str:
        """Autoware label name."""
        return CLASS_NAMES[self.class_id]


@dataclass
class Scene:
    """A rendered frame and its labels (see the module contract)."""

    image: np.ndarray
    objects: List[ObjectLabel]
    ignored: List[ObjectLabel]
    seed: int
    time_s: float
    instances: Optional[np.ndarray] = None
    info: Dict[str, object] = field(default_factory=dict)


@dataclass
class _Thing:
    """An object or an occluder in the world (metres, seconds)."""

    class_id: int          # -1 for occluders (poles, trees, signs)
    style: Dict[str, object]
    x: float
    z: float
    vx: float
    vz: float
    height: float
    width: float


@dataclass
class Layout:
    """Everything random about one scene except per-frame noise."""

    seed: int
    f: float
    cx: float
    horizon: float
    cam_h: float
    ego_speed: float
    lanes: int
    lane_w: float
    ego_lane: int
    two_way: bool
    sidewalk_w: float
    setback: float
    kind: str
    palette: Dict[str, Tuple[int, int, int]]
    buildings: List[Tuple[int, float, float, float, Tuple[int, int, int], int]]
    things: List[_Thing]
    marks: List[Tuple[float, float, float, float]]
    crosswalk_z: float
    light: Dict[str, float]
    hood: float


def _color(rng: np.random.Generator, base: Sequence[int], amount: int = 15
           ) -> Tuple[int, int, int]:
    c = np.clip(np.asarray(base) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


class SceneGenerator:
    """Deterministic renderer of driving scenes; see the module contract."""

    def __init__(self, config: SceneConfig = SceneConfig()) -> None:
        if config.width < 64 or config.height < 64:
            raise ValueError(f'scene size must be at least 64x64, got '
                             f'{config.width}x{config.height}')
        weights = np.asarray(config.class_weights, np.float64)
        if weights.shape != (len(CLASS_NAMES),) or weights.min() < 0 or weights.sum() <= 0:
            raise ValueError('class_weights must be 8 non-negative numbers, not all zero')
        self.config = config
        self.width = int(config.width)
        self.height = int(config.height)
        self._weights = weights / weights.sum()
        # Resolution factor: geometry is designed for 1920 wide and scales with the width.
        self._k = self.width / 1920.0

    # ----------------------------------------------------------------------------- layout
    def layout(self, seed: int, camera: int = 0) -> Layout:
        """Sample the scene layout of ``seed`` (camera 0 front, 1 front-left, 2 front-right)."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7919, int(camera)]))
        W, H, k = self.width, self.height, self._k
        f = float(rng.uniform(900, 1500)) * k
        yaw_shift = {0: 0.0, 1: 0.22, 2: -0.22}.get(camera % 3, 0.0) * W
        cx = W / 2 + yaw_shift + float(rng.uniform(-0.06, 0.06)) * W
        horizon = float(rng.uniform(0.36, 0.52)) * H
        kind = str(rng.choice(['urban', 'urban', 'suburban', 'rural', 'highway']))
        lanes = int(rng.integers(2, 5)) if kind != 'highway' else int(rng.integers(3, 5))
        lane_w = float(rng.uniform(3.0, 3.7))
        ego_lane = int(rng.integers(0, lanes))
        two_way = bool(kind != 'highway' and rng.random() < 0.7)
        sidewalk_w = float(rng.uniform(1.5, 4.0)) if kind != 'highway' else 0.0
        setback = float(rng.uniform(0.5, 6.0))
        day = float(rng.random())
        palette = {
            'sky_top': _color(rng, (200, 140, 90) if day > 0.25 else (120, 90, 90), 25),
            'sky_low': _color(rng, (235, 215, 200) if day > 0.25 else (140, 160, 200), 20),
            'road': _color(rng, (90, 90, 92), 20),
            'walk': _color(rng, (150, 155, 160), 20),
            'terrain': _color(rng, (60, 120, 90) if kind == 'rural' else (100, 110, 115),
                              20),
            'mark': _color(rng, (225, 225, 225), 15),
            'yellow': _color(rng, (40, 190, 220), 15),
        }
        buildings: List[Tuple[int, float, float, float, Tuple[int, int, int], int]] = []
        if kind in ('urban', 'suburban'):
            for side in (-1, 1):
                z = float(rng.uniform(2.0, 8.0))
                while z < 160:
                    length = float(rng.uniform(8, 30))
                    tall = float(rng.uniform(6, 40 if kind == 'urban' else 12))
                    col = _color(rng, ((150, 160, 175), (90, 110, 150), (180, 180, 180),
                                       (110, 120, 120), (70, 90, 120))[int(rng.integers(5))],
                                 25)
                    buildings.append((side, z, z + length, tall, col,
                                      int(rng.integers(0, 3))))
                    z += length + float(rng.uniform(0, 6))
        things: List[_Thing] = []
        # occluders and distractors along the sidewalks: poles, signs, trees, bollards
        road_half = lanes * lane_w / 2
        for side in (-1, 1):
            z = float(rng.uniform(3, 15))
            while z < 110:
                kind_o = str(rng.choice(['pole', 'tree', 'sign', 'bollard', 'tree', 'light']))
                x = side * (road_half + float(rng.uniform(0.3, max(sidewalk_w, 1.0) + 1.0)))
                hgt = {'pole': 7.0, 'tree': float(rng.uniform(3, 8)), 'sign': 2.6,
                       'bollard': 0.9, 'light': 5.0}[kind_o]
                wid = {'pole': 0.25, 'tree': hgt * 0.55, 'sign': 0.8, 'bollard': 0.25,
                       'light': 0.5}[kind_o]
                if kind != 'rural' or kind_o == 'tree' or rng.random() < 0.3:
                    style = {'kind': kind_o, 'seed': int(rng.integers(2**31)),
                             'color': _color(rng, (60, 130, 70), 30)}
                    things.append(_Thing(-1, style, x, z, 0.0, 0.0, hgt, wid))
                z += float(rng.uniform(8, 30))
        ego_speed = float(rng.uniform(0, 15))
        n = int(rng.integers(self.config.min_objects, self.config.max_objects + 1))
        lane_x0 = -(ego_lane + 0.5) * lane_w            # left edge of the road, ego at X = 0
        crosswalk_z = float(rng.uniform(8, 40)) if rng.random() < 0.35 else -1.0
        for _ in range(n):
            thing = self._sample_object(rng, f, lane_x0, lanes, lane_w, ego_lane, two_way,
                                        sidewalk_w, ego_speed, crosswalk_z, cx, horizon)
            if thing is not None:
                things.append(thing)
        marks = []
        for _ in range(int(rng.integers(0, 6))):
            marks.append((lane_x0 + float(rng.uniform(0, lanes * lane_w)),
                          float(rng.uniform(5, 60)), float(rng.uniform(0.3, 1.5)),
                          float(rng.uniform(-1, 1))))
        light = {
            'gain': (float(rng.uniform(0.55, 1.25)) if day > 0.25
                     else float(rng.uniform(0.45, 0.8))),
            'gamma': float(rng.uniform(0.8, 1.25)) if rng.random() < 0.4 else 1.0,
            'tint': float(rng.uniform(-0.08, 0.08)),
            'vignette': float(rng.uniform(0.0, 0.35)),
            'sun_x': float(rng.uniform(-1, 1)), 'sun': float(rng.uniform(0.0, 0.35)),
            'shadows': float(rng.random() < 0.45),
            'blur': float(rng.uniform(0.0, 1.4)) if rng.random() < 0.6 else 0.0,
            'motion': float(rng.integers(3, 10)) if rng.random() < 0.15 else 0.0,
            'noise': float(rng.uniform(1.5, 7.0)) * (1.3 if day <= 0.25 else 1.0),
            'jpeg': float(rng.uniform(45, 90)) if rng.random() < 0.25 else 0.0,
        }
        hood = float(rng.uniform(0.05, 0.12)) if rng.random() < 0.3 else 0.0
        return Layout(int(seed), f, cx, horizon, float(rng.uniform(1.3, 1.9)), ego_speed,
                      lanes, lane_w, ego_lane, two_way, sidewalk_w, setback, kind, palette,
                      buildings, things, marks, crosswalk_z, light, hood)

    def _sample_object(self, rng: np.random.Generator, f: float, lane_x0: float, lanes: int,
                       lane_w: float, ego_lane: int, two_way: bool, sidewalk_w: float,
                       ego_speed: float, crosswalk_z: float, cx: float, horizon: float
                       ) -> Optional[_Thing]:
        cls = int(rng.choice(len(CLASS_NAMES), p=self._weights))
        road_l, road_r = lane_x0, lane_x0 + lanes * lane_w
        # oncoming lanes: the left half of a two-way road
        oncoming = (lanes // 2) if two_way else 0
        for _ in range(8):
            vx = vz = 0.0
            r = float(rng.random())
            if cls in (CAR, TRUCK, BUS):
                if r < 0.72:
                    lane = int(rng.integers(lanes))
                    x = road_l + (lane + 0.5) * lane_w + float(rng.uniform(-0.4, 0.4))
                    if lane < oncoming:
                        view, vz = 'front', -float(rng.uniform(5, 20))
                    else:
                        view, vz = 'rear', float(rng.uniform(0, 20))
                elif r < 0.87:
                    side = -1 if rng.random() < 0.5 else 1
                    x = (road_l - 1.2) if side < 0 else (road_r + 1.2)
                    x += side * float(rng.uniform(0, 0.6))
                    view = 'rear'
                else:
                    x = float(rng.uniform(road_l - 8, road_r + 8))
                    view, vx = 'side', float(rng.choice([-1, 1]) * rng.uniform(1, 8))
            elif cls == PEDESTRIAN:
                if r < 0.65 and sidewalk_w > 0:
                    side = -1 if rng.random() < 0.5 else 1
                    x = (road_l - float(rng.uniform(0.3, sidewalk_w))) if side < 0 else (
                        road_r + float(rng.uniform(0.3, sidewalk_w)))
                    view = 'front' if rng.random() < 0.5 else 'rear'
                    vz = float(rng.uniform(-1.5, 1.5))
                else:
                    x = float(rng.uniform(road_l - 2, road_r + 2))
                    view, vx = 'side', float(rng.choice([-1, 1]) * rng.uniform(0.5, 1.8))
            elif cls in (BICYCLE, MOTORBIKE):
                if r < 0.6:
                    x = road_r - float(rng.uniform(0.5, 1.5)) if rng.random() < 0.6 else (
                        road_l + (int(rng.integers(lanes)) + 0.5) * lane_w)
                    view, vz = 'rear', float(rng.uniform(2, 12))
                elif r < 0.75 and two_way:
                    x = road_l + float(rng.uniform(0.5, 1.5))
                    view, vz = 'front', -float(rng.uniform(2, 12))
                else:
                    x = float(rng.uniform(road_l - 3, road_r + 3))
                    view, vx = 'side', float(rng.choice([-1, 1]) * rng.uniform(1, 6))
            elif cls == ANIMAL:
                x = float(rng.uniform(road_l - 5, road_r + 5))
                if r < 0.7:
                    view, vx = 'side', float(rng.choice([-1, 1]) * rng.uniform(0, 3))
                else:
                    view = 'front'
            else:
                x = float(rng.uniform(road_l + 0.3, road_r - 0.3)) if r < 0.7 else float(
                    rng.uniform(road_l - 3, road_r + 3))
                view = 'front'
            style = sprites.sample_style(cls, rng, view)
            height, width = sprites.sample_size(cls, style, rng)
            z_far = min(f * height / (self.config.min_height_px * self._k), 140.0)
            z_near = max(3.0, 1.2 * height)
            if z_far <= z_near:
                continue
            u = float(rng.random()) ** 0.85
            z = z_near * (z_far / z_near) ** u
            if view == 'side' and crosswalk_z > 0 and cls in (PEDESTRIAN, BICYCLE) \
                    and rng.random() < 0.5:
                z = crosswalk_z + float(rng.uniform(0, 3))
            u_px = cx + f * x / z
            w_px = f * width / z
            if -0.3 * w_px < u_px < self.width + 0.3 * w_px:
                return _Thing(cls, style, x, z, vx, vz - ego_speed, height, width)
        return None

    # ----------------------------------------------------------------------------- render
    def render(self, seed: int, time_s: float = 0.0, camera: int = 0,
               return_instances: bool = False, layout: Optional[Layout] = None) -> Scene:
        """Render the scene of ``seed`` at ``time_s``; see the module contract."""
        lay = layout if layout is not None else self.layout(seed, camera)
        rng = np.random.default_rng(np.random.SeedSequence(
            [int(seed), int(round(time_s * 1000)), int(camera), 104729]))
        W, H = self.width, self.height
        img = np.empty((H, W, 3), np.uint8)
        ids = np.zeros((H, W), np.int16)
        self._draw_background(img, lay, time_s, rng)
        items = []
        for idx, thing in enumerate(lay.things):
            z = thing.z + thing.vz * time_s if thing.class_id >= 0 else \
                thing.z - lay.ego_speed * time_s
            x = thing.x + thing.vx * time_s
            if z > 2.0:
                items.append((z, idx, x))
        items.sort(key=lambda item: -item[0])
        full_area: Dict[int, int] = {}
        regions: Dict[int, Tuple[int, int, int, int]] = {}
        for z, idx, x in items:
            thing = lay.things[idx]
            u = lay.cx + lay.f * x / z
            v = lay.horizon + lay.f * lay.cam_h / z
            w_px = lay.f * thing.width / z
            h_px = lay.f * thing.height / z
            if w_px < 1.5 or h_px < 1.5 or w_px > 4 * W or h_px > 4 * H:
                continue
            x0 = int(round(u - w_px / 2))
            y0 = int(round(v - h_px))
            if thing.class_id >= 0:
                obj_rng = np.random.default_rng(np.random.SeedSequence(
                    [int(seed), int(round(time_s * 1000)), int(camera), idx]))
                sprite, mask = sprites.draw_object(thing.class_id, thing.style,
                                                   int(round(w_px)), int(round(h_px)),
                                                   phase=time_s * 6.0, rng=obj_rng)
                if self.config.contact_shadows:
                    self._contact_shadow(img, u, v, w_px, h_px, lay)
                instance = idx + 1
            else:
                sprite, mask = _draw_occluder(thing.style, int(round(w_px)), int(round(h_px)))
                instance = 0
            area = self._paste(img, ids, sprite, mask, x0, y0, instance)
            if instance:
                full_area[instance] = area
                regions[instance] = (x0, y0, x0 + sprite.shape[1], y0 + sprite.shape[0])
        if lay.hood > 0:
            self._draw_hood(img, ids, lay)
        objects, ignored = self._labels(ids, lay, full_area, regions)
        info = {'kind': lay.kind, 'camera': camera}
        if self.config.effects:
            img = self._effects(img, lay, rng)
        return Scene(img, objects, ignored, int(seed), float(time_s),
                     ids if return_instances else None, info)

    def _labels(self, ids: np.ndarray, lay: Layout, full_area: Dict[int, int],
                regions: Dict[int, Tuple[int, int, int, int]]
                ) -> Tuple[List[ObjectLabel], List[ObjectLabel]]:
        objects: List[ObjectLabel] = []
        ignored: List[ObjectLabel] = []
        W, H = self.width, self.height
        min_box = self.config.min_box_px * self._k
        for instance, (x0, y0, x1, y1) in regions.items():
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
            if cx1 <= cx0 or cy1 <= cy0 or full_area[instance] == 0:
                continue
            sel = ids[cy0:cy1, cx0:cx1] == instance
            count = int(np.count_nonzero(sel))
            if count == 0:
                continue
            rows = np.flatnonzero(sel.any(axis=1))
            cols = np.flatnonzero(sel.any(axis=0))
            box = (float(cx0 + cols[0]), float(cy0 + rows[0]), float(cx0 + cols[-1] + 1),
                   float(cy0 + rows[-1] + 1))
            visible = count / full_area[instance]
            label = ObjectLabel(lay.things[instance - 1].class_id, box, visible, instance)
            small = (box[2] - box[0]) < min_box or (box[3] - box[1]) < min_box
            if visible < self.config.min_visible or small:
                ignored.append(label)
            else:
                objects.append(label)
        objects.sort(key=lambda o: o.instance)
        ignored.sort(key=lambda o: o.instance)
        return objects, ignored

    def _paste(self, img: np.ndarray, ids: np.ndarray, sprite: np.ndarray, mask: np.ndarray,
               x0: int, y0: int, instance: int) -> int:
        """Composite a sprite at (x0, y0); return how many of its pixels lie in the frame."""
        H, W = ids.shape
        h, w = mask.shape
        sx0, sy0 = max(0, -x0), max(0, -y0)
        sx1, sy1 = min(w, W - x0), min(h, H - y0)
        if sx1 <= sx0 or sy1 <= sy0:
            return 0
        m = mask[sy0:sy1, sx0:sx1]
        dst_img = img[y0 + sy0:y0 + sy1, x0 + sx0:x0 + sx1]
        cv2.copyTo(sprite[sy0:sy1, sx0:sx1], m, dst_img)
        sel = m > 0
        ids[y0 + sy0:y0 + sy1, x0 + sx0:x0 + sx1][sel] = instance
        return int(np.count_nonzero(sel))

    # ------------------------------------------------------------------------- background
    def _ground_v(self, lay: Layout, z: float) -> float:
        return lay.horizon + lay.f * lay.cam_h / z

    def _u(self, lay: Layout, x: float, z: float) -> float:
        return lay.cx + lay.f * x / z

    def _quad(self, lay: Layout, x0: float, x1: float, z0: float, z1: float) -> np.ndarray:
        """Pixel polygon of a ground rectangle [x0, x1] x [z0, z1]."""
        pts = [(self._u(lay, x0, z0), self._ground_v(lay, z0)),
               (self._u(lay, x1, z0), self._ground_v(lay, z0)),
               (self._u(lay, x1, z1), self._ground_v(lay, z1)),
               (self._u(lay, x0, z1), self._ground_v(lay, z1))]
        return np.round(np.asarray(pts) * 8).astype(np.int32)

    def _fill(self, img: np.ndarray, polys: List[np.ndarray], color) -> None:
        if polys:
            cv2.fillPoly(img, polys, color, cv2.LINE_AA, shift=3)

    def _draw_background(self, img: np.ndarray, lay: Layout, t: float,
                         rng: np.random.Generator) -> None:
        W, H = self.width, self.height
        hor = int(round(lay.horizon))
        pal = lay.palette
        # sky: vertical gradient with soft clouds, drawn small and upscaled
        sh, sw = max(hor // 8, 2), max(W // 8, 2)
        a = np.linspace(0.0, 1.0, sh, dtype=np.float32)[:, None, None]
        sky = (np.asarray(pal['sky_top'], np.float32) * (1 - a)
               + np.asarray(pal['sky_low'], np.float32) * a)
        sky = np.repeat(sky, sw, axis=1)
        srng = np.random.default_rng(lay.seed + 17)
        for _ in range(int(srng.integers(0, 7))):
            c = (int(srng.integers(0, sw)), int(srng.integers(0, sh)))
            ax = (int(srng.integers(sw // 16 + 2, sw // 4 + 3)),
                  int(srng.integers(2, sh // 5 + 3)))
            cv2.ellipse(sky, c, ax, 0, 0, 360, (245, 245, 245), -1)
        sky = cv2.GaussianBlur(sky, (0, 0), 2.0)
        if hor > 0:
            cv2.resize(sky.astype(np.uint8), (W, hor), dst=img[:hor],
                       interpolation=cv2.INTER_LINEAR)
        # ground below the horizon
        cv2.rectangle(img, (0, hor), (W - 1, H - 1), pal['terrain'], -1)
        far = 400.0
        road_l = -(lay.ego_lane + 0.5) * lay.lane_w
        road_r = road_l + lay.lanes * lay.lane_w
        near = 0.5
        if lay.sidewalk_w > 0:
            self._fill(img, [self._quad(lay, road_l - lay.sidewalk_w - lay.setback, road_l,
                                        near, far),
                             self._quad(lay, road_r, road_r + lay.sidewalk_w + lay.setback,
                                        near, far)], pal['walk'])
        self._fill(img, [self._quad(lay, road_l, road_r, near, far)], pal['road'])
        # road wear: patches, cracks
        for mx, mz, size, shade in lay.marks:
            z = mz - lay.ego_speed * t
            if z > 2:
                col = tuple(int(c * (1 + 0.15 * shade)) for c in pal['road'])
                self._fill(img, [self._quad(lay, mx, mx + size, z, z + size * 2)], col)
        # lane markings (dashes move with the ego speed)
        period, dash = 9.0, 3.0
        off = (lay.ego_speed * t) % period
        dashes = []
        solid = []
        for k in range(1, lay.lanes):
            x = road_l + k * lay.lane_w
            oncoming_edge = lay.two_way and k == lay.lanes // 2
            if oncoming_edge:
                solid.append((x - 0.08, x + 0.08))
                continue
            z = 1.0 - off
            while z < 150:
                z0 = max(z, near)
                if z + dash > near:
                    dashes.append(self._quad(lay, x - 0.07, x + 0.07, z0, z + dash))
                z += period
        self._fill(img, dashes, pal['mark'])
        self._fill(img, [self._quad(lay, a0, a1, near, far) for a0, a1 in solid],
                   pal['yellow'])
        self._fill(img, [self._quad(lay, road_l + 0.1, road_l + 0.25, near, far),
                         self._quad(lay, road_r - 0.25, road_r - 0.1, near, far)], pal['mark'])
        if lay.crosswalk_z > 0:
            z0 = lay.crosswalk_z - lay.ego_speed * t
            if z0 > 2:
                stripes = []
                x = road_l + 0.3
                while x < road_r - 0.5:
                    stripes.append(self._quad(lay, x, x + 0.5, z0, z0 + 3.0))
                    x += 1.0
                self._fill(img, stripes, pal['mark'])
        # buildings: facades parallel to the road, windows in a grid
        self._draw_buildings(img, lay, t, road_l, road_r)

    def _draw_buildings(self, img: np.ndarray, lay: Layout, t: float, road_l: float,
                        road_r: float) -> None:
        win_colors = ((60, 50, 40), (120, 110, 90), (170, 190, 200))
        # draw far to near so nearer facades cover farther ones
        order = sorted(lay.buildings, key=lambda b: -b[1])
        for side, z0, z1, tall, col, win in order:
            z0 -= lay.ego_speed * t
            z1 -= lay.ego_speed * t
            if z1 < 1.0:
                continue
            z0 = max(z0, 1.0)
            x = (road_l - lay.sidewalk_w - lay.setback) if side < 0 else (
                road_r + lay.sidewalk_w + lay.setback)
            top = lay.cam_h - tall

            def vtop(z: float) -> float:
                return lay.horizon + lay.f * top / z

            pts = np.asarray([(self._u(lay, x, z0), self._ground_v(lay, z0)),
                              (self._u(lay, x, z1), self._ground_v(lay, z1)),
                              (self._u(lay, x, z1), vtop(z1)),
                              (self._u(lay, x, z0), vtop(z0))])
            poly = np.round(np.clip(pts, -1e5, 1e5) * 8).astype(np.int32)
            cv2.fillPoly(img, [poly], col, cv2.LINE_AA, shift=3)
            # windows: a grid of small quads on the facade
            nz = max(int((z1 - z0) / 3.0), 1)
            ny = max(int(tall / 3.2), 1)
            zs = z0 + (np.arange(nz) + 0.25) * (z1 - z0) / nz
            ze = zs + 0.5 * (z1 - z0) / nz
            hs = lay.cam_h - (np.arange(ny) + 0.35) * tall / ny
            he = hs - 0.45 * tall / ny
            zz0, hh0 = np.meshgrid(zs, hs)
            zz1, hh1 = np.meshgrid(ze, he)
            quad = np.stack([
                np.stack([lay.cx + lay.f * x / zz0, lay.horizon + lay.f * hh0 / zz0], -1),
                np.stack([lay.cx + lay.f * x / zz1, lay.horizon + lay.f * hh0 / zz1], -1),
                np.stack([lay.cx + lay.f * x / zz1, lay.horizon + lay.f * hh1 / zz1], -1),
                np.stack([lay.cx + lay.f * x / zz0, lay.horizon + lay.f * hh1 / zz0], -1),
            ], axis=2).reshape(-1, 4, 2)
            quad = np.round(np.clip(quad, -1e5, 1e5) * 8).astype(np.int32)
            cv2.fillPoly(img, list(quad), win_colors[win], cv2.LINE_AA, shift=3)

    def _contact_shadow(self, img: np.ndarray, u: float, v: float, w: float, h: float,
                        lay: Layout) -> None:
        H, W = img.shape[:2]
        ry = max(int(w * 0.08), 1)
        x0, x1 = int(u - w * 0.6), int(u + w * 0.6)
        y0, y1 = int(v - ry), int(v + ry)
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
        if cx1 <= cx0 or cy1 <= cy0:
            return
        patch = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.ellipse(patch, ((x1 - x0) // 2, (y1 - y0) // 2), (max((x1 - x0) // 2, 1), ry),
                    0, 0, 360, 255, -1)
        region = img[cy0:cy1, cx0:cx1]
        dark = (region >> 1) + (region >> 4)
        cv2.copyTo(dark, patch[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0], region)

    def _draw_hood(self, img: np.ndarray, ids: np.ndarray, lay: Layout) -> None:
        W, H = self.width, self.height
        top = H * (1 - lay.hood)
        pts = np.asarray([(0, H), (0, top + 0.4 * lay.hood * H), (W * 0.25, top),
                          (W * 0.75, top), (W, top + 0.4 * lay.hood * H), (W, H)])
        poly = [np.round(pts).astype(np.int32)]
        cv2.fillPoly(img, poly, (35, 35, 38), cv2.LINE_8)
        cv2.fillPoly(ids, poly, 0, cv2.LINE_8)

    # ------------------------------------------------------------------------------ effects
    def _effects(self, img: np.ndarray, lay: Layout, rng: np.random.Generator) -> np.ndarray:
        W, H = self.width, self.height
        li = lay.light
        # low-resolution gain map: vignette, sun gradient, soft shadows; 128 == 1.0
        gh, gw = max(H // 16, 2), max(W // 16, 2)
        yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        xn = xx / (gw - 1) * 2 - 1
        yn = yy / (gh - 1) * 2 - 1
        gain = 1.0 - li['vignette'] * (xn ** 2 + yn ** 2) / 2
        gain = gain + li['sun'] * np.clip(1 - np.abs(xn - li['sun_x']), 0, 1) * (yn < 0.2)
        gain *= li['gain']
        if li['shadows']:
            smask = np.zeros((gh, gw), np.float32)
            srng = np.random.default_rng(lay.seed + 31)
            for _ in range(int(srng.integers(1, 4))):
                x0 = float(srng.uniform(-0.2, 0.9)) * gw
                width = float(srng.uniform(0.1, 0.5)) * gw
                y0 = lay.horizon / H * gh
                pts = np.asarray([(x0, y0), (x0 + width * 0.3, y0), (x0 + width, gh),
                                  (x0 - width * 0.5, gh)])
                cv2.fillPoly(smask, [np.round(pts).astype(np.int32)], 1.0)
            smask = cv2.GaussianBlur(smask, (0, 0), 1.0)
            gain *= 1 - 0.4 * smask
        tint = np.asarray([1.0 + li['tint'], 1.0, 1.0 - li['tint']], np.float32)
        g = np.clip(gain[:, :, None] * tint * 128, 0, 255).astype(np.uint8)
        g = cv2.resize(g, (W, H), interpolation=cv2.INTER_LINEAR)
        img = cv2.multiply(img, g, scale=1 / 128.0)
        if abs(li['gamma'] - 1.0) > 0.05:
            x = np.arange(256, dtype=np.float32) / 255.0
            lut = np.clip(255 * x ** li['gamma'], 0, 255).astype(np.uint8)
            img = cv2.LUT(img.reshape(H, -1), lut).reshape(H, W, 3)
        if li['blur'] > 0.3:
            img = cv2.GaussianBlur(img, (0, 0), li['blur'] * self._k + 0.01)
        if li['motion'] > 0:
            ksize = max(int(li['motion'] * self._k), 2)
            kernel = np.full((1, ksize), 1.0 / ksize, np.float32)
            img = cv2.filter2D(img, -1, kernel)
        pos, neg = _noise_tiles(li['noise'])
        oy = int(rng.integers(0, pos.shape[0] - H + 1)) if pos.shape[0] > H else 0
        ox = int(rng.integers(0, pos.shape[1] - W + 1)) if pos.shape[1] > W else 0
        if pos.shape[0] >= H and pos.shape[1] >= W:
            pos, neg = pos[oy:oy + H, ox:ox + W], neg[oy:oy + H, ox:ox + W]
        else:
            pos = cv2.resize(pos, (W, H), interpolation=cv2.INTER_NEAREST)
            neg = cv2.resize(neg, (W, H), interpolation=cv2.INTER_NEAREST)
        img = cv2.subtract(cv2.add(img, pos), neg)
        if li['jpeg'] > 0:
            ok, buf = cv2.imencode('.jpg', img, [cv2.IMWRITE_JPEG_QUALITY, int(li['jpeg'])])
            if ok:
                img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        return img


_NOISE: Dict[int, Tuple[np.ndarray, np.ndarray]] = {}
#: Sensor noise levels (standard deviation, 0-255 scale) that have a precomputed tile.
NOISE_LEVELS = (1.5, 3.0, 4.5, 6.0, 8.0)


def _noise_tiles(sigma: float) -> Tuple[np.ndarray, np.ndarray]:
    """Return (positive part, negative part) uint8 tiles of Gaussian noise near ``sigma``.

    Tiles are 1408x2048x3, made once per process from a fixed seed, so frames stay
    deterministic; a frame takes a random window of them.
    """
    level = int(np.argmin([abs(sigma - s) for s in NOISE_LEVELS]))
    if level not in _NOISE:
        rng = np.random.default_rng(12345 + level)
        noise = rng.normal(0, NOISE_LEVELS[level], (1408, 2048, 3)).astype(np.float32)
        noise = np.clip(np.round(noise), -255, 255)
        _NOISE[level] = (np.maximum(noise, 0).astype(np.uint8),
                         np.maximum(-noise, 0).astype(np.uint8))
    return _NOISE[level]


def _draw_occluder(style: Dict[str, object], w: int, h: int) -> Tuple[np.ndarray, np.ndarray]:
    """Draw a pole, tree, sign, street light or bollard; same contract as sprites."""
    sp = sprites.Sprite(w, h)
    rng = np.random.default_rng(int(style['seed']))
    kind = style['kind']
    grey = (110, 110, 115)
    if kind == 'pole':
        sp.rect(0.3, 0.0, 0.7, 1.0, grey)
    elif kind == 'light':
        sp.rect(0.45, 0.0, 0.55, 1.0, grey)
        sp.rect(0.0, 0.0, 1.0, 0.03, grey)
        sp.rect(0.0, 0.02, 0.2, 0.06, (200, 230, 240))
    elif kind == 'bollard':
        sp.rect(0.1, 0.0, 0.9, 1.0, (60, 60, 60))
        sp.rect(0.1, 0.15, 0.9, 0.3, (220, 220, 220), cover=False)
    elif kind == 'sign':
        sp.rect(0.45, 0.25, 0.55, 1.0, grey)
        shape = int(rng.integers(3))
        face = ((40, 40, 200), (200, 120, 30), (40, 200, 230))[int(rng.integers(3))]
        if shape == 0:
            sp.ellipse(0.5, 0.15, 0.45, 0.14, face)
            sp.ellipse(0.5, 0.15, 0.3, 0.09, (240, 240, 240), cover=False)
        elif shape == 1:
            sp.poly([(0.05, 0.3), (0.95, 0.3), (0.5, 0.0)], face)
        else:
            sp.rect(0.05, 0.0, 0.95, 0.3, face)
    else:
        green = style['color']
        sp.rect(0.44, 0.45, 0.56, 1.0, (40, 60, 80))
        for _ in range(6):
            sp.ellipse(float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.15, 0.5)),
                       float(rng.uniform(0.2, 0.35)), float(rng.uniform(0.1, 0.25)),
                       tuple(int(c) + int(rng.integers(-20, 20)) for c in green))
    return sp.img, sp.mask


def class_names() -> List[str]:
    """Return the 8 Autoware class names in label order."""
    return list(CLASS_NAMES)


__all__ = ['SceneConfig', 'SceneGenerator', 'Scene', 'ObjectLabel', 'Layout', 'class_names',
           'CAR', 'TRUCK', 'BUS', 'BICYCLE', 'MOTORBIKE', 'PEDESTRIAN', 'ANIMAL', 'UNKNOWN']

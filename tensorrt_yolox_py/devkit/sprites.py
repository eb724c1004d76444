"""Object sprites of the generated driving scenes: one drawing function per class.

Contract: ``draw_object(class_id, style, w, h, phase)`` returns ``(image, mask)`` where
``image`` is an (h, w, 3) uint8 BGR sprite and ``mask`` an (h, w) uint8 array, 255 on every
pixel the object covers and 0 elsewhere. Every primitive is drawn with the same rasterisation
(``cv2`` LINE_8, no anti-aliasing) into both arrays, so the object's pixels in the image are
exactly the mask's pixels: the scene renderer derives the ground-truth box from the mask.
``(w, h)`` is the object's nominal pixel size (width, height); the drawing may leave margins
(a pedestrian's arms do not fill the box), which is why boxes come from masks, not from sizes.
``style`` is a dict of random choices made once per object (colours, variant, view) by
``sample_style(class_id, rng)``; ``phase`` animates gaits (walking legs, pedalling).
"""

import math
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

# Class indices (the Autoware label order of config/label.txt).
UNKNOWN, CAR, TRUCK, BUS, BICYCLE, MOTORBIKE, PEDESTRIAN, ANIMAL = range(8)
CLASS_NAMES = ('UNKNOWN', 'CAR', 'TRUCK', 'BUS', 'BICYCLE', 'MOTORBIKE', 'PEDESTRIAN',
               'ANIMAL')

Color = Tuple[int, int, int]
Style = Dict[str, object]

CAR_COLORS: Sequence[Color] = (
    (235, 235, 235), (30, 30, 30), (185, 185, 180), (120, 120, 125), (40, 40, 170),
    (150, 70, 20), (40, 80, 40), (150, 190, 200), (40, 180, 230), (90, 30, 110),
    (200, 150, 90), (60, 60, 90))
BUS_COLORS: Sequence[Color] = (
    (30, 200, 240), (235, 235, 235), (40, 40, 190), (160, 90, 30), (60, 140, 60),
    (200, 200, 60))
CLOTH_COLORS: Sequence[Color] = (
    (30, 30, 30), (200, 200, 200), (40, 40, 160), (150, 80, 30), (60, 110, 60),
    (40, 150, 210), (120, 60, 130), (90, 90, 90), (160, 160, 40), (70, 100, 150),
    (200, 120, 160))
SKIN_COLORS: Sequence[Color] = ((160, 190, 230), (110, 150, 200), (70, 100, 150),
                                (50, 70, 100), (140, 170, 215))
ANIMAL_COLORS: Sequence[Color] = ((40, 80, 130), (60, 60, 60), (200, 200, 200),
                                  (50, 110, 170), (30, 30, 30), (90, 130, 160))


def _jitter(color: Sequence[int], rng: np.random.Generator, amount: int = 18) -> Color:
    c = np.clip(np.asarray(color, np.int32) + rng.integers(-amount, amount + 1, 3), 0, 255)
    return int(c[0]), int(c[1]), int(c[2])


def _pick(options: Sequence, rng: np.random.Generator):
    return options[int(rng.integers(len(options)))]


class Sprite:
    """An (h, w) drawing canvas plus its coverage mask, in normalised coordinates.

    Coordinates are fractions of the width (x) and height (y), y downwards; lengths given as
    ``r`` are fractions of the height.
    """

    def __init__(self, w: int, h: int) -> None:
        self.w = max(int(w), 2)
        self.h = max(int(h), 2)
        self.img = np.zeros((self.h, self.w, 3), np.uint8)
        self.mask = np.zeros((self.h, self.w), np.uint8)

    def _pts(self, pts: Sequence[Tuple[float, float]]) -> np.ndarray:
        arr = np.asarray(pts, np.float64) * (self.w - 1, self.h - 1)
        return np.round(arr).astype(np.int32)

    def _len(self, r: float) -> int:
        return max(int(round(r * self.h)), 1)

    def poly(self, pts: Sequence[Tuple[float, float]], color: Color, cover: bool = True
             ) -> None:
        """Fill a polygon; ``cover=False`` paints detail only where the object already is."""
        p = [self._pts(pts)]
        if cover:
            cv2.fillPoly(self.img, p, color, cv2.LINE_8)
            cv2.fillPoly(self.mask, p, 255, cv2.LINE_8)
        else:
            self._detail(lambda canvas, col: cv2.fillPoly(canvas, p, col, cv2.LINE_8), color)

    def rect(self, x0: float, y0: float, x1: float, y1: float, color: Color,
             cover: bool = True) -> None:
        """Fill an axis-aligned rectangle."""
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], color, cover)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, color: Color,
                thickness: int = -1, angle: float = 0.0, cover: bool = True) -> None:
        """Draw an ellipse; ``rx`` is a fraction of the width, ``ry`` of the height."""
        center = (int(round(cx * (self.w - 1))), int(round(cy * (self.h - 1))))
        axes = (max(int(round(rx * self.w)), 1), max(int(round(ry * self.h)), 1))

        def draw(canvas: np.ndarray, col) -> None:
            cv2.ellipse(canvas, center, axes, angle, 0, 360, col, thickness, cv2.LINE_8)

        if cover:
            draw(self.img, color)
            draw(self.mask, 255)
        else:
            self._detail(draw, color)

    def circle(self, cx: float, cy: float, r: float, color: Color, thickness: float = -1,
               cover: bool = True) -> None:
        """Draw a circle of radius ``r`` (fraction of the height); thickness likewise."""
        center = (int(round(cx * (self.w - 1))), int(round(cy * (self.h - 1))))
        radius = self._len(r)
        th = -1 if thickness < 0 else self._len(thickness)

        def draw(canvas: np.ndarray, col) -> None:
            cv2.circle(canvas, center, radius, col, th, cv2.LINE_8)

        if cover:
            draw(self.img, color)
            draw(self.mask, 255)
        else:
            self._detail(draw, color)

    def line(self, p0: Tuple[float, float], p1: Tuple[float, float], color: Color,
             thickness: float, cover: bool = True) -> None:
        """Draw a thick line; ``thickness`` is a fraction of the height."""
        a, b = self._pts([p0, p1])
        th = self._len(thickness)

        def draw(canvas: np.ndarray, col) -> None:
            cv2.line(canvas, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), col, th,
                     cv2.LINE_8)

        if cover:
            draw(self.img, color)
            draw(self.mask, 255)
        else:
            self._detail(draw, color)

    def _detail(self, draw, color: Color) -> None:
        # Details only recolour the image; pixels outside the mask are never composited.
        draw(self.img, color)

    def shade(self, top: float, bottom: float, rng: np.random.Generator,
              texture: float = 6.0) -> None:
        """Apply a vertical brightness ramp and a little texture noise (object pixels only)."""
        ramp = np.clip(np.linspace(top, bottom, self.h) * 128, 0, 255).astype(np.uint8)
        ramp3 = cv2.resize(np.repeat(ramp[:, None, None], 3, axis=2), (self.w, self.h),
                           interpolation=cv2.INTER_NEAREST)
        self.img = cv2.multiply(self.img, ramp3, scale=1 / 128.0)
        if texture > 0:
            noise = rng.integers(0, int(texture) + 1, (self.h, self.w, 1), dtype=np.uint8)
            self.img = cv2.subtract(cv2.add(self.img, np.repeat(noise, 3, axis=2)),
                                    (float(texture // 2),) * 3)

    def flip(self) -> None:
        """Mirror horizontally."""
        self.img = np.ascontiguousarray(self.img[:, ::-1])
        self.mask = np.ascontiguousarray(self.mask[:, ::-1])


# ---------------------------------------------------------------------------------------------
# Styles: random choices made once per object
# ---------------------------------------------------------------------------------------------

def sample_style(class_id: int, rng: np.random.Generator, view: str) -> Style:
    """Return the random appearance of one object of ``class_id`` seen from ``view``.

    ``view`` is 'rear', 'front' or 'side' (the renderer chooses it from the object's motion).
    """
    s: Style = {'view': view, 'flip': bool(rng.random() < 0.5),
                'seed': int(rng.integers(2**31)),
                'shade_top': float(rng.uniform(1.0, 1.15)),
                'shade_bottom': float(rng.uniform(0.7, 0.9))}
    if class_id == CAR:
        s['kind'] = _pick(('sedan', 'hatch', 'suv', 'van'), rng)
        s['color'] = _jitter(_pick(CAR_COLORS, rng), rng)
        s['glass'] = _jitter((70, 55, 45), rng, 20)
        s['roof'] = float(rng.uniform(0.0, 0.12))
    elif class_id == TRUCK:
        s['kind'] = _pick(('box', 'box', 'tanker', 'dump', 'pickup'), rng)
        s['color'] = _jitter(_pick(CAR_COLORS, rng), rng)
        s['cargo'] = _jitter(_pick(((220, 220, 220), (180, 180, 180), (60, 120, 200),
                                    (90, 90, 90), (40, 160, 220), (70, 70, 150)), rng), rng)
        s['glass'] = _jitter((70, 55, 45), rng, 20)
    elif class_id == BUS:
        s['color'] = _jitter(_pick(BUS_COLORS, rng), rng)
        s['stripe'] = _jitter(_pick(CAR_COLORS, rng), rng)
        s['glass'] = _jitter((60, 45, 35), rng, 15)
        s['windows'] = int(rng.integers(4, 8))
    elif class_id in (BICYCLE, MOTORBIKE, PEDESTRIAN):
        s['shirt'] = _jitter(_pick(CLOTH_COLORS, rng), rng)
        s['pants'] = _jitter(_pick(CLOTH_COLORS, rng), rng)
        s['skin'] = _jitter(_pick(SKIN_COLORS, rng), rng, 10)
        s['hair'] = _jitter(_pick(((20, 20, 20), (30, 50, 80), (60, 110, 170),
                                   (180, 180, 180)), rng), rng, 10)
        s['frame'] = _jitter(_pick(CAR_COLORS, rng), rng)
        s['helmet'] = _jitter(_pick(CAR_COLORS, rng), rng)
        s['bag'] = bool(rng.random() < 0.3)
        s['coat'] = bool(rng.random() < 0.35)
        s['phase0'] = float(rng.uniform(0, 2 * math.pi))
    elif class_id == ANIMAL:
        s['kind'] = _pick(('dog', 'dog', 'deer', 'cat', 'boar'), rng)
        s['color'] = _jitter(_pick(ANIMAL_COLORS, rng), rng)
        s['phase0'] = float(rng.uniform(0, 2 * math.pi))
    else:
        s['kind'] = _pick(('boxes', 'barrels', 'bin', 'tires', 'sack'), rng)
        s['color'] = _jitter(_pick(((60, 130, 190), (30, 110, 230), (150, 90, 30),
                                    (40, 40, 40), (60, 140, 60), (170, 170, 170)), rng), rng)
        s['count'] = int(rng.integers(1, 4))
    return s


# Real-world size ranges (height, width seen from behind, length seen from the side), metres.
SIZES: Dict[int, Tuple[Tuple[float, float], Tuple[float, float], Tuple[float, float]]] = {
    UNKNOWN: ((0.45, 1.2), (0.5, 1.6), (0.5, 1.8)),
    CAR: ((1.4, 1.75), (1.7, 1.95), (3.9, 4.9)),
    TRUCK: ((2.6, 3.8), (2.2, 2.5), (6.0, 10.0)),
    BUS: ((2.9, 3.4), (2.45, 2.6), (10.0, 12.5)),
    BICYCLE: ((1.6, 1.9), (0.55, 0.7), (1.6, 1.8)),
    MOTORBIKE: ((1.35, 1.6), (0.75, 0.95), (1.9, 2.2)),
    PEDESTRIAN: ((1.1, 1.95), (0.45, 0.6), (0.5, 0.75)),
    ANIMAL: ((0.45, 1.4), (0.35, 0.6), (0.7, 1.7)),
}


def sample_size(class_id: int, style: Style, rng: np.random.Generator) -> Tuple[float, float]:
    """Return the object's (height, visible width) in metres for its view."""
    (h0, h1), (w0, w1), (l0, l1) = SIZES[class_id]
    u = float(rng.random())
    height = h0 + u * (h1 - h0)
    if class_id == TRUCK and style.get('kind') == 'pickup':
        height = float(rng.uniform(1.7, 1.95))
    if class_id == ANIMAL:
        kind = style.get('kind')
        height = {'cat': 0.3, 'dog': 0.55, 'boar': 0.8, 'deer': 1.35}[str(kind)]
        height *= float(rng.uniform(0.85, 1.2))
        length = height * {'cat': 1.5, 'dog': 1.6, 'boar': 1.6, 'deer': 1.1}[str(kind)]
        width = length * 0.4
        return height, (length if style['view'] == 'side' else width)
    if style['view'] == 'side':
        return height, l0 + float(rng.random()) * (l1 - l0)
    return height, w0 + u * (w1 - w0)


# ---------------------------------------------------------------------------------------------
# Drawing, one function per class
# ---------------------------------------------------------------------------------------------

def _car(sp: Sprite, s: Style) -> None:
    body, glass = s['color'], s['glass']
    dark = (25, 25, 25)
    kind, view = s['kind'], s['view']
    cab_top = {'sedan': 0.12, 'hatch': 0.08, 'suv': 0.02, 'van': 0.0}[str(kind)]
    cab_top += float(s['roof'])
    if view == 'side':
        cut = {'sedan': (0.28, 0.7), 'hatch': (0.25, 0.85), 'suv': (0.2, 0.9),
               'van': (0.12, 0.95)}[str(kind)]
        sp.poly([(0.0, 0.5), (0.04, 0.42), (0.22, 0.4), (cut[0], cab_top),
                 (cut[1], cab_top), (min(cut[1] + 0.1, 1.0), 0.42), (1.0, 0.48), (1.0, 0.82),
                 (0.0, 0.84)], body)
        sp.poly([(cut[0] + 0.03, cab_top + 0.06), (0.5, cab_top + 0.06), (0.5, 0.42),
                 (0.25, 0.42)], glass, cover=False)
        sp.poly([(0.53, cab_top + 0.06), (cut[1] - 0.02, cab_top + 0.06),
                 (min(cut[1] + 0.07, 0.98), 0.42), (0.53, 0.42)], glass, cover=False)
        sp.line((0.02, 0.62), (0.98, 0.62), dark, 0.015, cover=False)
        for cx in (0.2, 0.8):
            sp.circle(cx, 0.8, 0.19, dark)
            sp.circle(cx, 0.8, 0.09, (150, 150, 150), cover=False)
        sp.rect(0.0, 0.5, 0.03, 0.58, (40, 40, 200), cover=False)
        sp.rect(0.97, 0.5, 1.0, 0.58, (200, 220, 230), cover=False)
        return
    sp.poly([(0.12, cab_top), (0.88, cab_top), (0.96, 0.45), (0.04, 0.45)], body)
    sp.poly([(0.0, 0.47), (0.04, 0.42), (0.96, 0.42), (1.0, 0.47), (1.0, 0.86), (0.0, 0.86)],
            body)
    sp.poly([(0.18, cab_top + 0.05), (0.82, cab_top + 0.05), (0.88, 0.41), (0.12, 0.41)],
            glass, cover=False)
    sp.rect(0.02, 0.78, 0.98, 0.87, dark, cover=False)
    sp.rect(0.06, 0.84, 0.2, 1.0, dark)
    sp.rect(0.8, 0.84, 0.94, 1.0, dark)
    if view == 'rear':
        sp.rect(0.03, 0.5, 0.2, 0.6, (30, 30, 200), cover=False)
        sp.rect(0.8, 0.5, 0.97, 0.6, (30, 30, 200), cover=False)
        sp.rect(0.4, 0.62, 0.6, 0.72, (225, 225, 225), cover=False)
    else:
        sp.rect(0.03, 0.5, 0.2, 0.58, (215, 235, 240), cover=False)
        sp.rect(0.8, 0.5, 0.97, 0.58, (215, 235, 240), cover=False)
        sp.rect(0.3, 0.52, 0.7, 0.66, (40, 40, 40), cover=False)
        sp.rect(0.42, 0.68, 0.58, 0.76, (225, 225, 225), cover=False)


def _truck(sp: Sprite, s: Style) -> None:
    cab, cargo, glass = s['color'], s['cargo'], s['glass']
    dark = (25, 25, 25)
    kind, view = s['kind'], s['view']
    if view == 'side':
        if kind == 'pickup':
            sp.poly([(0.0, 0.45), (0.3, 0.42), (0.38, 0.05), (0.62, 0.05), (0.68, 0.42),
                     (1.0, 0.45), (1.0, 0.82), (0.0, 0.82)], cab)
            sp.poly([(0.41, 0.1), (0.6, 0.1), (0.64, 0.4), (0.41, 0.4)], glass, cover=False)
            wheels = (0.18, 0.82)
        else:
            sp.poly([(0.0, 0.25), (0.05, 0.1), (0.2, 0.1), (0.22, 0.82), (0.0, 0.82)], cab)
            sp.poly([(0.02, 0.16), (0.18, 0.16), (0.18, 0.42), (0.01, 0.42)], glass,
                    cover=False)
            if kind == 'tanker':
                sp.ellipse(0.6, 0.45, 0.38, 0.3, cargo)
                sp.rect(0.22, 0.62, 1.0, 0.8, dark)
            elif kind == 'dump':
                sp.poly([(0.24, 0.3), (1.0, 0.2), (0.98, 0.7), (0.26, 0.7)], cargo)
                sp.rect(0.22, 0.66, 1.0, 0.8, dark)
            else:
                sp.rect(0.23, 0.0, 1.0, 0.74, cargo)
                for k in range(1, 6):
                    x = 0.23 + 0.77 * k / 6
                    sp.line((x, 0.04), (x, 0.7), (cargo[0] * 0.8, cargo[1] * 0.8,
                                                  cargo[2] * 0.8), 0.01, cover=False)
                sp.rect(0.22, 0.72, 1.0, 0.8, dark)
            wheels = (0.1, 0.62, 0.78, 0.92)
        for cx in wheels:
            sp.circle(cx, 0.84, 0.14, dark)
            sp.circle(cx, 0.84, 0.06, (140, 140, 140), cover=False)
        return
    if kind == 'pickup':
        sp.poly([(0.14, 0.0), (0.86, 0.0), (0.92, 0.4), (0.08, 0.4)], cab)
        sp.poly([(0.2, 0.05), (0.8, 0.05), (0.85, 0.36), (0.15, 0.36)], glass, cover=False)
        sp.rect(0.0, 0.4, 1.0, 0.86, cab)
    else:
        top = 0.0 if kind in ('box', 'dump') else 0.1
        if view == 'rear':
            if kind == 'tanker':
                sp.ellipse(0.5, 0.42, 0.5, 0.38, cargo)
            else:
                sp.rect(0.0, top, 1.0, 0.84, cargo)
                sp.line((0.5, top + 0.03), (0.5, 0.8), (40, 40, 40), 0.01, cover=False)
                sp.rect(0.03, top + 0.03, 0.97, top + 0.06, (60, 60, 60), cover=False)
        else:
            sp.rect(0.0, 0.0, 1.0, 0.84, cab)
            sp.rect(0.08, 0.08, 0.92, 0.42, glass, cover=False)
            sp.rect(0.2, 0.5, 0.8, 0.7, (50, 50, 50), cover=False)
    sp.rect(0.0, 0.82, 1.0, 0.9, dark)
    sp.rect(0.04, 0.86, 0.24, 1.0, dark)
    sp.rect(0.76, 0.86, 0.96, 1.0, dark)
    light = (30, 30, 200) if view == 'rear' else (215, 235, 240)
    sp.rect(0.02, 0.74, 0.14, 0.8, light, cover=False)
    sp.rect(0.86, 0.74, 0.98, 0.8, light, cover=False)


def _bus(sp: Sprite, s: Style) -> None:
    body, stripe, glass = s['color'], s['stripe'], s['glass']
    dark = (25, 25, 25)
    if s['view'] == 'side':
        sp.poly([(0.0, 0.06), (0.02, 0.0), (0.98, 0.0), (1.0, 0.06), (1.0, 0.86),
                 (0.0, 0.86)], body)
        n = int(s['windows'])
        for k in range(n):
            x0 = 0.12 + 0.86 * k / n
            sp.rect(x0 + 0.01, 0.12, x0 + 0.86 / n - 0.01, 0.48, glass, cover=False)
        sp.rect(0.0, 0.08, 0.08, 0.5, glass, cover=False)
        sp.rect(0.02, 0.5, 0.09, 0.82, glass, cover=False)
        sp.rect(0.45, 0.5, 0.52, 0.82, glass, cover=False)
        sp.rect(0.0, 0.58, 1.0, 0.63, stripe, cover=False)
        for cx in (0.17, 0.8):
            sp.circle(cx, 0.86, 0.12, dark)
            sp.circle(cx, 0.86, 0.05, (140, 140, 140), cover=False)
        return
    sp.poly([(0.02, 0.03), (0.1, 0.0), (0.9, 0.0), (0.98, 0.03), (1.0, 0.92), (0.0, 0.92)],
            body)
    if s['view'] == 'rear':
        sp.rect(0.1, 0.12, 0.9, 0.38, glass, cover=False)
        sp.rect(0.25, 0.55, 0.75, 0.75, (60, 60, 60), cover=False)
        light = (30, 30, 200)
    else:
        sp.rect(0.05, 0.14, 0.95, 0.58, glass, cover=False)
        sp.rect(0.15, 0.03, 0.85, 0.1, (30, 160, 230), cover=False)
        light = (215, 235, 240)
    sp.rect(0.0, 0.64, 1.0, 0.68, stripe, cover=False)
    sp.rect(0.04, 0.72, 0.16, 0.8, light, cover=False)
    sp.rect(0.84, 0.72, 0.96, 0.8, light, cover=False)
    sp.rect(0.06, 0.9, 0.22, 1.0, dark)
    sp.rect(0.78, 0.9, 0.94, 1.0, dark)


def _person(sp: Sprite, s: Style, phase: float, top: float, bottom: float,
            side: bool, legs: bool = True, x_shift: float = 0.0, lean: float = 0.0) -> None:
    """Draw a person between heights ``top`` and ``bottom`` (fractions of the sprite)."""
    h = bottom - top
    cx = 0.5 + x_shift
    head_r = 0.065 * h
    head_y = top + head_r
    sh_y = top + 0.17 * h
    hip_y = top + 0.55 * h
    shirt, pants, skin = s['shirt'], s['pants'], s['skin']
    hx = cx + lean
    if side:
        swing = 0.22 * math.sin(phase)
        if legs:
            for sgn in (1, -1):
                knee = (cx + sgn * swing * 0.5, hip_y + 0.22 * h)
                foot = (cx + sgn * swing, bottom)
                sp.line((cx, hip_y), knee, pants, 0.07 * h)
                sp.line(knee, foot, pants, 0.06 * h)
        sp.poly([(hx - 0.17, sh_y), (hx + 0.17, sh_y), (cx + 0.15, hip_y + 0.03),
                 (cx - 0.15, hip_y + 0.03)], shirt)
        sp.line((hx, sh_y + 0.02 * h), (hx - swing * 0.8, hip_y), skin, 0.05 * h)
    else:
        if legs:
            spread = 0.06 + 0.04 * abs(math.sin(phase))
            sp.poly([(cx - 0.3, hip_y - 0.02), (cx - 0.02, hip_y - 0.02),
                     (cx - 0.04, bottom), (cx - 0.24 - spread, bottom)], pants)
            sp.poly([(cx + 0.02, hip_y - 0.02), (cx + 0.3, hip_y - 0.02),
                     (cx + 0.24 + spread, bottom), (cx + 0.04, bottom)], pants)
        coat = 0.12 * h if s.get('coat') else 0.0
        sp.poly([(hx - 0.36, sh_y), (hx + 0.36, sh_y), (cx + 0.32, hip_y + coat),
                 (cx - 0.32, hip_y + coat)], shirt)
        arm = 0.03 * math.sin(phase)
        sp.line((hx - 0.38, sh_y + 0.02 * h), (cx - 0.42 + arm, hip_y + 0.02 * h), shirt,
                0.06 * h)
        sp.line((hx + 0.38, sh_y + 0.02 * h), (cx + 0.42 - arm, hip_y + 0.02 * h), shirt,
                0.06 * h)
        sp.circle(cx - 0.42 + arm, hip_y + 0.03 * h, 0.025 * h, skin)
        sp.circle(cx + 0.42 - arm, hip_y + 0.03 * h, 0.025 * h, skin)
    sp.line((hx, sh_y - 0.03 * h), (hx, sh_y + 0.01 * h), skin, 0.04 * h)
    sp.ellipse(hx, head_y, head_r * sp.h / sp.w * 0.95, head_r, skin)
    sp.ellipse(hx, head_y - 0.3 * head_r, head_r * sp.h / sp.w, 0.75 * head_r, s['hair'])
    if s.get('bag') and legs:
        sp.rect(cx + 0.2, sh_y + 0.1 * h, cx + 0.45, hip_y, (40, 60, 90))


def _pedestrian(sp: Sprite, s: Style, phase: float) -> None:
    _person(sp, s, phase, 0.0, 1.0, side=s['view'] == 'side')


def _bicycle(sp: Sprite, s: Style, phase: float) -> None:
    frame = s['frame']
    dark = (20, 20, 20)
    if s['view'] == 'side':
        r = 0.17
        for cx in (0.2, 0.8):
            sp.ellipse(cx, 1.0 - r, 0.19, r, dark, thickness=max(sp.h // 40, 1))
        sp.line((0.2, 1 - r), (0.45, 1 - r), frame, 0.025)
        sp.line((0.45, 1 - r), (0.72, 0.5), frame, 0.025)
        sp.line((0.2, 1 - r), (0.38, 0.52), frame, 0.025)
        sp.line((0.38, 0.52), (0.72, 0.5), frame, 0.025)
        sp.line((0.72, 0.5), (0.8, 1 - r), frame, 0.025)
        sp.line((0.72, 0.5), (0.7, 0.42), dark, 0.02)
        pedal = (0.45 + 0.07 * math.cos(phase), 1 - r + 0.07 * math.sin(phase))
        _person(sp, s, phase, 0.0, 0.9, side=True, legs=False, x_shift=-0.08, lean=0.1)
        sp.line((0.4, 0.5), (0.5, 0.66), s['pants'], 0.06)
        sp.line((0.5, 0.66), pedal, s['pants'], 0.05)
        sp.line((0.4, 0.2), (0.7, 0.42), s['shirt'], 0.04)
        return
    sp.rect(0.42, 0.62, 0.58, 1.0, dark)
    sp.rect(0.3, 0.36, 0.7, 0.4, dark)
    _person(sp, s, phase, 0.0, 0.62, side=False, legs=False)
    sp.poly([(0.28, 0.36), (0.48, 0.36), (0.44, 0.8), (0.36, 0.8)], s['pants'])
    sp.poly([(0.52, 0.36), (0.72, 0.36), (0.64, 0.8), (0.56, 0.8)], s['pants'])
    sp.rect(0.45, 0.56, 0.55, 0.6, (30, 30, 200) if s['view'] == 'rear' else (200, 230, 240),
            cover=False)


def _motorbike(sp: Sprite, s: Style, phase: float) -> None:
    frame = s['frame']
    dark = (20, 20, 20)
    if s['view'] == 'side':
        r = 0.2
        for cx in (0.2, 0.8):
            sp.circle(cx, 1.0 - r, r, dark)
            sp.circle(cx, 1.0 - r, r * 0.45, (150, 150, 150), cover=False)
        sp.poly([(0.2, 0.62), (0.35, 0.5), (0.7, 0.48), (0.82, 0.58), (0.7, 0.75),
                 (0.3, 0.75)], frame)
        sp.poly([(0.25, 0.5), (0.5, 0.46), (0.5, 0.52), (0.25, 0.55)], dark, cover=False)
        sp.line((0.75, 0.5), (0.8, 1 - r), (120, 120, 120), 0.025)
        _person(sp, s, phase, 0.0, 0.85, side=True, legs=False, x_shift=-0.05, lean=0.12)
        sp.line((0.42, 0.5), (0.58, 0.62), s['pants'], 0.07)
        sp.line((0.58, 0.62), (0.55, 0.78), s['pants'], 0.06)
        sp.line((0.45, 0.22), (0.72, 0.42), s['shirt'], 0.05)
        sp.ellipse(0.57, 0.07, 0.1, 0.075, s['helmet'])
        return
    sp.rect(0.38, 0.68, 0.62, 1.0, dark)
    sp.poly([(0.2, 0.45), (0.8, 0.45), (0.7, 0.75), (0.3, 0.75)], frame)
    sp.rect(0.1, 0.42, 0.9, 0.46, dark)
    _person(sp, s, phase, 0.0, 0.62, side=False, legs=False)
    sp.ellipse(0.5, 0.06, 0.2, 0.075, s['helmet'])
    sp.poly([(0.22, 0.42), (0.46, 0.42), (0.4, 0.82), (0.26, 0.82)], s['pants'])
    sp.poly([(0.54, 0.42), (0.78, 0.42), (0.74, 0.82), (0.6, 0.82)], s['pants'])
    sp.rect(0.42, 0.6, 0.58, 0.66, (30, 30, 200) if s['view'] == 'rear' else (200, 230, 240),
            cover=False)


def _animal(sp: Sprite, s: Style, phase: float) -> None:
    col = s['color']
    dark = (int(col[0] * 0.6), int(col[1] * 0.6), int(col[2] * 0.6))
    kind = s['kind']
    if s['view'] != 'side':
        sp.ellipse(0.5, 0.55, 0.42, 0.28, col)
        sp.ellipse(0.5, 0.28, 0.26, 0.2, col)
        sp.ellipse(0.4, 0.25, 0.05, 0.04, (10, 10, 10), cover=False)
        sp.ellipse(0.6, 0.25, 0.05, 0.04, (10, 10, 10), cover=False)
        for x in (0.3, 0.42, 0.58, 0.7):
            sp.line((x, 0.7), (x, 1.0), dark, 0.06)
        if kind == 'deer':
            sp.line((0.4, 0.12), (0.3, 0.0), (50, 80, 110), 0.02)
            sp.line((0.6, 0.12), (0.7, 0.0), (50, 80, 110), 0.02)
        return
    leg_top = {'deer': 0.5, 'dog': 0.55, 'cat': 0.6, 'boar': 0.62}[str(kind)]
    body_top = {'deer': 0.2, 'dog': 0.25, 'cat': 0.32, 'boar': 0.18}[str(kind)]
    sp.ellipse(0.45, (body_top + leg_top) / 2 + 0.05, 0.33, (leg_top - body_top) / 2 + 0.06,
               col)
    swing = 0.06 * math.sin(phase)
    for x, sgn in ((0.2, 1), (0.28, -1), (0.62, 1), (0.7, -1)):
        sp.line((x, leg_top), (x + sgn * swing, 1.0), dark, 0.05)
    head = (0.86, body_top - 0.02) if kind != 'boar' else (0.86, body_top + 0.2)
    if kind in ('deer',):
        sp.line((0.72, body_top + 0.1), (0.85, body_top - 0.05), col, 0.1)
    sp.ellipse(head[0], head[1], 0.1, 0.12, col)
    sp.ellipse(min(head[0] + 0.09, 0.95), head[1] + 0.04, 0.05, 0.05, dark)
    if kind in ('dog', 'cat'):
        sp.poly([(head[0] - 0.05, head[1] - 0.08), (head[0] - 0.01, head[1] - 0.2),
                 (head[0] + 0.02, head[1] - 0.08)], dark)
        sp.line((0.12, body_top + 0.12), (0.02, body_top - 0.06 + swing), col, 0.05)
    if kind == 'deer':
        sp.line((head[0], head[1] - 0.1), (head[0] - 0.08, 0.0), (60, 90, 120), 0.025)
        sp.line((head[0] - 0.04, head[1] - 0.1), (head[0] + 0.04, 0.0), (60, 90, 120),
                0.025)


def _unknown(sp: Sprite, s: Style, rng: np.random.Generator) -> None:
    col = s['color']
    kind = s['kind']
    n = int(s['count'])
    if kind == 'boxes':
        for k in range(n):
            x0 = 0.05 + 0.3 * k / max(n, 1) * rng.uniform(0.5, 1.0)
            y0 = 0.15 + 0.25 * (n - 1 - k)
            sp.rect(x0, min(y0, 0.7), min(x0 + rng.uniform(0.5, 0.9), 1.0), 1.0,
                    _jitter((60, 130, 180), rng))
            sp.line((x0, min(y0, 0.7) + 0.05), (min(x0 + 0.5, 1.0), min(y0, 0.7) + 0.05),
                    (40, 90, 140), 0.03, cover=False)
    elif kind == 'barrels':
        for k in range(n):
            x0 = k / n
            sp.rect(x0 + 0.02, 0.05, x0 + 1.0 / n - 0.02, 1.0, col)
            for yy in (0.3, 0.65):
                sp.rect(x0 + 0.02, yy, x0 + 1.0 / n - 0.02, yy + 0.06, (230, 230, 230),
                        cover=False)
    elif kind == 'bin':
        sp.poly([(0.1, 0.12), (0.9, 0.12), (0.82, 0.9), (0.18, 0.9)], col)
        sp.rect(0.05, 0.0, 0.95, 0.14, col)
        sp.circle(0.25, 0.92, 0.08, (20, 20, 20))
        sp.circle(0.75, 0.92, 0.08, (20, 20, 20))
    elif kind == 'tires':
        for k in range(max(n, 2)):
            y = 1.0 - (k + 0.5) / max(n, 2)
            sp.ellipse(0.5, y, 0.48, 0.5 / max(n, 2), (25, 25, 25))
            sp.ellipse(0.5, y, 0.2, 0.15 / max(n, 2), (70, 70, 70), cover=False)
    else:
        pts = []
        m = 9
        for k in range(m):
            a = 2 * math.pi * k / m
            rad = rng.uniform(0.7, 1.0)
            pts.append((0.5 + 0.5 * rad * math.cos(a), 0.55 + 0.45 * rad * math.sin(a)))
        sp.poly(pts, col)
        shade = (int(col[0] * 0.7), int(col[1] * 0.7), int(col[2] * 0.7))
        sp.line((0.2, 0.5), (0.8, 0.6), shade, 0.04, cover=False)


def draw_object(class_id: int, style: Style, w: int, h: int, phase: float,
                rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Draw one object into an (h, w) sprite; see the module contract."""
    sp = Sprite(w, h)
    phase = phase + float(style.get('phase0', 0.0))
    if class_id == CAR:
        _car(sp, style)
    elif class_id == TRUCK:
        _truck(sp, style)
    elif class_id == BUS:
        _bus(sp, style)
    elif class_id == BICYCLE:
        _bicycle(sp, style, phase)
    elif class_id == MOTORBIKE:
        _motorbike(sp, style, phase)
    elif class_id == PEDESTRIAN:
        _pedestrian(sp, style, phase)
    elif class_id == ANIMAL:
        _animal(sp, style, phase)
    else:
        _unknown(sp, style, np.random.default_rng(int(style['seed'])))
    sp.shade(float(style['shade_top']), float(style['shade_bottom']), rng,
             texture=4.0 if min(sp.w, sp.h) < 40 else 7.0)
    if style.get('flip'):
        sp.flip()
    return sp.img, sp.mask


def object_classes() -> List[str]:
    """Return the class names in label order."""
    return list(CLASS_NAMES)

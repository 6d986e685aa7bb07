"""One image: a crop of a camera's scene, the person, maybe an occluder, then optics and lighting."""
from __future__ import annotations

from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from bau.data.synthetic.camera import Camera, camera_canvas
from bau.data.synthetic.draws import choose
from bau.data.synthetic.figure import VIEWS
from bau.data.synthetic.identity import Person
from bau.data.synthetic.palettes import pick, shade
from bau.data.synthetic.person import draw_person
from bau.data.synthetic.styles import DomainStyle


def render_image(person: Person, camera: Camera, style: DomainStyle, rng: np.random.Generator, height: int,
                 width: int, occluder: Optional[Person] = None) -> Image.Image:
    """One RGB image (``height`` x ``width``) of ``person`` seen by ``camera`` in ``style``'s domain."""
    ch, cw = camera_canvas(style, height, width)
    ws, hs = camera.scene.size
    y0, x0 = int(rng.integers(0, hs - ch + 1)), int(rng.integers(0, ws - cw + 1))
    canvas = camera.scene.crop((x0, y0, x0 + cw, y0 + ch))
    draw = ImageDraw.Draw(canvas)

    view = VIEWS[choose(rng, camera.view_probs.tolist())]
    h = ch * rng.uniform(*camera.scale_range)
    top = (ch - h) * rng.uniform(0.25, 0.85) + ch * rng.normal(0, 0.02)  # crop offset, sometimes cuts feet/head
    cx = cw * (0.5 + rng.uniform(-0.08, 0.08))
    draw_person(draw, person, view, float(rng.uniform(-1, 1)), cx, top, h)
    if occluder is not None:
        draw_occluder(draw, rng, occluder, ch, cw, top, h)

    img = canvas.resize((width, height), Image.BILINEAR) if (cw, ch) != (width, height) else canvas
    if style.blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(style.blur * rng.uniform(0.7, 1.3)))
    return Image.fromarray(np.clip(light_and_sensor(np.asarray(img, dtype=np.float32), camera, style, rng) + 0.5,
                                   0, 255).astype(np.uint8))


def draw_occluder(draw: ImageDraw.ImageDraw, rng: np.random.Generator, occluder: Person, ch: int, cw: int,
                  top: float, h: float) -> None:
    """Something in front of the person on the ``ch`` x ``cw`` canvas: a pole, a box or barrier, or
    ``occluder`` walking past (``top``, ``h``: where the person's head is and how tall they are)."""
    kind = int(rng.integers(3))
    if kind == 0:  # pole or tree trunk
        pw = cw * rng.uniform(0.07, 0.14)
        px = cw * rng.uniform(0.1, 0.9)
        color = shade((120, 120, 124), rng.uniform(0.4, 1.3))
        draw.rectangle([px - pw / 2, 0, px + pw / 2, ch], fill=color)
    elif kind == 1:  # box, bin or barrier in front of the legs
        bh = ch * rng.uniform(0.18, 0.38)
        bx0 = cw * rng.uniform(-0.3, 0.4)
        color = tuple(int(v) for v in pick(rng, ((112, 86, 60), (90, 96, 90), (150, 146, 140), (60, 80, 120)), 20))
        draw.rectangle([bx0, ch - bh, bx0 + cw * rng.uniform(0.5, 1.0), ch], fill=color)
        draw.rectangle([bx0, ch - bh, bx0 + cw, ch - bh + max(1, ch * 0.02)], fill=shade(color, 1.3))
    else:  # another pedestrian walking past in front, half out of the frame
        side = -1 if rng.random() < 0.5 else 1
        draw_person(draw, occluder, VIEWS[int(rng.integers(4))], float(rng.uniform(-1, 1)),
                    cw * (0.5 + side * rng.uniform(0.55, 0.75)), top + ch * rng.normal(0, 0.03),
                    h * rng.uniform(0.95, 1.1))


def light_and_sensor(a: np.ndarray, camera: Camera, style: DomainStyle, rng: np.random.Generator) -> np.ndarray:
    """Lighting and sensor of an (H, W, 3) float image: a global gain and a linear shadow across it,
    the camera's colour cast and the domain's colour temperature, saturation and contrast, then
    sensor noise. Returns float32, not clipped."""
    height, width = a.shape[:2]
    angle = rng.uniform(0, 2 * np.pi)
    yy = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None]
    xx = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :]
    ramp = 1.0 + camera.shadow * rng.uniform(0.5, 1.0) * (np.cos(angle) * xx + np.sin(angle) * yy)
    gains = camera.gain * rng.uniform(0.78, 1.22) * style.brightness * camera.cast * np.asarray(style.temperature)
    out = colour_transform(a, ramp, gains, style.saturation, style.contrast)
    if style.noise > 0:  # uniform noise with the requested std: a third of the cost of Gaussian draws
        out += (rng.random(out.shape, dtype=np.float32) - np.float32(0.5)) * np.float32(style.noise * 12 ** 0.5)
    return out


def colour_transform(rgb: np.ndarray, light: np.ndarray, gains: np.ndarray, saturation: float,
                     contrast: float) -> np.ndarray:
    """Lighting and colour grading of an image, as one linear map per pixel.

    ``rgb``: (H, W, 3) float; ``light``: (H, W) per-pixel brightness; ``gains``: (3,) RGB gains
    (colour temperature, camera cast, exposure). The result is, per pixel,
    ``c' = contrast * (grey + saturation * (c - grey) - 128) + 128`` with ``c = light * gains * rgb``
    and ``grey`` the mean of ``c`` over channels; returned as (H, W, 3) float32 (not clipped).
    Saturation and contrast are linear, so they fold into one 3x3 matrix.
    """
    s = float(saturation)
    saturate = s * np.eye(3) + (1.0 - s) / 3.0 * np.ones((3, 3))  # row i: s * c_i + (1 - s) * grey
    matrix = (float(contrast) * saturate * np.asarray(gains, np.float64)[None, :]).astype(np.float32)
    lit = np.asarray(rgb, np.float32) * np.asarray(light, np.float32)[..., None]
    return lit @ matrix.T + np.float32(128.0 * (1.0 - float(contrast)))

"""The head of a drawn person: face, hair by style and viewpoint, and the cap."""
from __future__ import annotations

from typing import List

import numpy as np

from bau.data.synthetic.figure import Figure
from bau.data.synthetic.palettes import shade


def draw_hair_behind(f: Figure) -> None:
    """Front views of long hair: the hair falling behind the shoulders (drawn before the body)."""
    if f.p.hair_style == "long" and f.view == "front":
        r_head, v_head, v_sh = f.r_head, f.v_head, f.v_sh
        f.poly([(-r_head * 1.0, v_head), (r_head * 1.0, v_head), (r_head * 1.15, v_sh + 0.07),
                (-r_head * 1.15, v_sh + 0.07)], f.p.hair)


def _head_centre(f: Figure) -> float:
    """Body ``u`` of the head's centre: a little towards the nose in side views."""
    return 0.01 * f.facing if f.side else 0.0


def _hair_box(f: Figure) -> List[float]:
    """Pixel box of the hair around the head."""
    hu, rw, rh, v_head = _head_centre(f), f.r_head * 0.86, f.r_head, f.v_head
    return [f.X(hu - rw * 1.08), f.Y(v_head - rh * 1.08), f.X(hu + rw * 1.08), f.Y(v_head + rh * 1.02)]


def draw_head(f: Figure) -> None:
    """The head and its hair: the back of the head, or the face with the hair around it."""
    if f.view == "back":
        _draw_back_of_head(f)
    elif f.p.hair_style == "buzz":
        _draw_face(f)
        hu, rw, rh, v_head, p = _head_centre(f), f.r_head * 0.86, f.r_head, f.v_head, f.p
        f.draw.chord([f.X(hu - rw), f.Y(v_head - rh), f.X(hu + rw), f.Y(v_head + rh)], 190, 350,
                     fill=tuple((np.array(p.hair) * 0.6 + np.array(p.skin) * 0.4).astype(int).tolist()))
    elif f.side:
        _draw_face(f)
        _draw_side_hair(f)
    else:
        _draw_face(f)
        _draw_front_hair(f)


def _draw_face(f: Figure) -> None:
    hu, rw, rh, v_head = _head_centre(f), f.r_head * 0.86, f.r_head, f.v_head
    f.ellipse(hu - rw, v_head - rh, hu + rw, v_head + rh, f.p.skin)


def _draw_back_of_head(f: Figure) -> None:
    """Seen from behind: all hair (a shaded skull for a buzz cut), long hair or a ponytail down the back."""
    p, rw, rh, v_head, v_sh = f.p, f.r_head * 0.86, f.r_head, f.v_head, f.v_sh
    f.draw.ellipse(_hair_box(f), fill=p.hair if p.hair_style != "buzz" else shade(p.hair, 0.6))
    if p.hair_style == "long":
        f.poly([(-rw * 1.05, v_head), (rw * 1.05, v_head), (rw * 1.2, v_sh + 0.09), (-rw * 1.2, v_sh + 0.09)], p.hair)
    if p.hair_style == "ponytail":
        f.ellipse(-0.02, v_head + rh * 0.5, 0.02, v_head + rh * 1.6, p.hair)


def _draw_side_hair(f: Figure) -> None:
    """Side views: hair on top and on the back half of the head; the face shows towards ``facing``."""
    p, facing, hu, rw, rh, v_head, v_sh = f.p, f.facing, _head_centre(f), f.r_head * 0.86, f.r_head, f.v_head, f.v_sh
    start, end = (100, 360) if facing > 0 else (180, 440)
    f.draw.pieslice(_hair_box(f), start, end, fill=p.hair)
    if p.hair_style == "long":
        f.poly([(hu - facing * rw * 0.2, v_head), (hu - facing * rw * 1.1, v_head),
                (hu - facing * rw * 1.2, v_sh + 0.07), (hu - facing * rw * 0.3, v_sh + 0.07)], p.hair)
    if p.hair_style == "ponytail":
        f.ellipse(hu - facing * rw * 1.5, v_head - 0.01, hu - facing * rw * 0.8, v_head + rh * 1.2, p.hair)


def _draw_front_hair(f: Figure) -> None:
    """Front views: hair over the forehead; long hair also in strands beside the face."""
    p, rw, v_head, v_sh = f.p, f.r_head * 0.86, f.v_head, f.v_sh
    f.draw.chord(_hair_box(f), 180, 360, fill=p.hair)
    if p.hair_style == "long":
        f.poly([(-rw * 1.08, v_head), (-rw * 0.8, v_head), (-rw * 0.85, v_sh + 0.05), (-rw * 1.15, v_sh + 0.05)],
               p.hair)
        f.poly([(rw * 0.8, v_head), (rw * 1.08, v_head), (rw * 1.15, v_sh + 0.05), (rw * 0.85, v_sh + 0.05)], p.hair)


def draw_cap(f: Figure) -> None:
    """The cap of ``hair_style == "cap"``: a crown over the head and a peak towards the camera or the nose."""
    p = f.p
    if p.hair_style != "cap":
        return
    hu, rw, rh, v_head = _head_centre(f), f.r_head * 0.86, f.r_head, f.v_head
    f.draw.chord([f.X(hu - rw * 1.12), f.Y(v_head - rh * 1.12), f.X(hu + rw * 1.12), f.Y(v_head + rh * 0.6)], 180,
                 360, fill=p.cap)
    if f.view == "front":
        f.ellipse(hu - rw * 1.1, v_head - rh * 0.4, hu + rw * 1.1, v_head - rh * 0.05, shade(p.cap, 0.8))
    elif f.side:
        poly_peak = [(hu, v_head - rh * 0.3), (hu + f.facing * rw * 1.7, v_head - rh * 0.3),
                     (hu + f.facing * rw * 1.7, v_head - rh * 0.15), (hu, v_head - rh * 0.15)]
        f.poly(poly_peak, shade(p.cap, 0.8))

"""The frame one person is drawn in: body coordinates, viewpoint and the body's key heights and widths.

Body coordinates are in units of the body height ``h``: ``u`` runs across (0 = the body's centre
line), ``v`` down (0 = the top of the head, 1 = the soles). A ``Figure`` maps them to pixels and
draws polygons, lines and ellipses in them; the body-part and accessory modules draw through it.
"""
from __future__ import annotations

from typing import Sequence, Tuple

from PIL import ImageDraw

from bau.data.synthetic.identity import Person
from bau.data.synthetic.palettes import RGB

VIEWS = ("front", "back", "left", "right")  # "left": the person's left side faces the camera


class Figure:
    """``p`` seen from ``view`` with gait phase ``swing`` in [-1, 1]; ``h`` is the body height in pixels and
    ``(cx, top)`` the top-centre of the head."""

    def __init__(self, draw: ImageDraw.ImageDraw, p: Person, view: str, swing: float, cx: float, top: float,
                 h: float) -> None:
        self.draw, self.p, self.view, self.swing = draw, p, view, swing
        self.cx, self.top, self.h = cx, top, h
        self.side = view in ("left", "right")
        self.facing = -1.0 if view == "left" else 1.0  # image direction the nose points in a side view
        b = p.build
        self.r_head = 0.062 * p.head_scale
        self.v_head = self.r_head + 0.004
        self.v_sh = 2 * self.r_head + 0.022  # shoulders
        self.v_hip = 1.0 - p.leg_ratio
        self.v_end = self.v_hip + p.top_length  # hem of the top
        self.v_knee = self.v_hip + 0.5 * p.leg_ratio
        self.shoe_h = 0.03
        self.w_sh = (0.066 if self.side else 0.106) * b
        self.w_hip = (0.062 if self.side else 0.086) * b
        self.w_leg = 0.036 * b
        self.w_arm = 0.03 * b
        # Which image side the person's left is on (front: image right; back: image left).
        self.left_sign = {"front": 1.0, "back": -1.0}.get(view, 0.0)
        self.bag_visible_side = self.side and ((view == "left") == (p.bag_side == "L"))

    def X(self, u: float) -> float:
        """Image x of body coordinate ``u``."""
        return self.cx + u * self.h

    def Y(self, v: float) -> float:
        """Image y of body coordinate ``v``."""
        return self.top + v * self.h

    def poly(self, points: Sequence[Tuple[float, float]], color: RGB) -> None:
        """A filled polygon through body points ``(u, v)``."""
        self.draw.polygon([(self.X(u), self.Y(v)) for u, v in points], fill=color)

    def line(self, u0: float, v0: float, u1: float, v1: float, width: float, color: RGB) -> None:
        """A line of ``width`` body units (at least one pixel)."""
        self.draw.line([(self.X(u0), self.Y(v0)), (self.X(u1), self.Y(v1))], fill=color,
                       width=max(1, int(round(width * self.h))))

    def ellipse(self, u0: float, v0: float, u1: float, v1: float, color: RGB) -> None:
        """A filled ellipse in the box between two body corners (the ``u`` order does not matter)."""
        x0, x1 = sorted((self.X(u0), self.X(u1)))
        self.draw.ellipse([x0, self.Y(v0), x1, self.Y(v1)], fill=color)

    def half_width(self, v: float) -> float:
        """Torso half width at height ``v`` (linear from the shoulders to the hem)."""
        t = (v - self.v_sh) / max(1e-6, self.v_end - self.v_sh)
        return self.w_sh + (self.w_hip * 1.08 - self.w_sh) * t

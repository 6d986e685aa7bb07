"""``draw_person``: one pedestrian drawn from its body parts and accessories, back to front."""
from __future__ import annotations

from PIL import ImageDraw

from bau.data.synthetic.bags import draw_bags_behind, draw_bags_in_front
from bau.data.synthetic.body import draw_arms, draw_far_arm, draw_hips, draw_legs, draw_pattern, draw_torso
from bau.data.synthetic.figure import Figure
from bau.data.synthetic.head import draw_cap, draw_hair_behind, draw_head
from bau.data.synthetic.identity import Person


def draw_person(draw: ImageDraw.ImageDraw, p: Person, view: str, swing: float, cx: float, top: float,
                h: float) -> None:
    """Draw ``p`` seen from ``view`` with gait phase ``swing`` in [-1, 1]; ``h`` is the body height in
    pixels, ``(cx, top)`` the top-centre of the head. Body coordinates are in units of ``h``."""
    f = Figure(draw, p, view, swing, cx, top, h)
    draw_bags_behind(f)  # things behind the body
    if f.side:
        draw_far_arm(f)
    draw_hair_behind(f)
    draw_legs(f)
    draw_hips(f)
    draw_torso(f)
    draw_pattern(f)
    draw_arms(f)
    draw_head(f)
    draw_cap(f)
    draw_bags_in_front(f)

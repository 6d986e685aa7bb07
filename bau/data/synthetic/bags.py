"""Bags of a drawn person: a backpack, a cross-body bag or a handbag, on the person's left or right.

What shows depends on the viewpoint: a backpack covers the back and shows straps from the front; a
side bag shows from its own side and hides (but for a shaded corner) behind the body from the other.
"""
from __future__ import annotations

from bau.data.synthetic.figure import Figure
from bau.data.synthetic.palettes import shade


def draw_bags_behind(f: Figure) -> None:
    """Side views: a backpack sticking out behind, or a side bag hanging on the far side of the body."""
    p = f.p
    if not f.side:
        return
    if p.bag == "backpack":
        back = -f.facing
        d = 0.075 * p.bag_size
        u_edge = back * f.w_sh * 0.9
        f.poly([(u_edge, f.v_sh + 0.02), (u_edge + back * d, f.v_sh + 0.04), (u_edge + back * d, f.v_hip - 0.02),
                (u_edge, f.v_hip - 0.01)], p.bag_color)
    if p.bag in ("shoulder", "handbag") and not f.bag_visible_side:
        s = 0.05 * p.bag_size
        u, v_hip = -f.facing * 0.02, f.v_hip
        f.poly([(u - s, v_hip - 0.03), (u + s, v_hip - 0.03), (u + s, v_hip + 0.06), (u - s, v_hip + 0.06)],
               shade(p.bag_color, 0.7))


def draw_bags_in_front(f: Figure) -> None:
    """The bag where it is in front of the body: the backpack or its straps, a visible side bag or handbag."""
    if f.p.bag == "backpack":
        _draw_backpack(f)
    elif f.p.bag == "shoulder":
        _draw_shoulder_bag(f)
    elif f.p.bag == "handbag":
        _draw_handbag(f)


def _draw_backpack(f: Figure) -> None:
    """From the back the pack with a band across it; from the front both straps; from the side one strap."""
    p, v_sh, w_sh = f.p, f.v_sh, f.w_sh
    if f.view == "back":
        s = p.bag_size
        f.poly([(-w_sh * 0.75 * s, v_sh + 0.025), (w_sh * 0.75 * s, v_sh + 0.025),
                (w_sh * 0.8 * s, f.v_hip - 0.02), (-w_sh * 0.8 * s, f.v_hip - 0.02)], p.bag_color)
        band_v = v_sh + 0.09
        f.poly([(-w_sh * 0.6 * s, band_v), (w_sh * 0.6 * s, band_v), (w_sh * 0.6 * s, band_v + 0.012),
                (-w_sh * 0.6 * s, band_v + 0.012)], shade(p.bag_color, 0.7))
    elif f.view == "front":
        for sgn in (-1.0, 1.0):
            f.line(sgn * w_sh * 0.55, v_sh, sgn * w_sh * 0.62, v_sh + 0.16, 0.018, shade(p.bag_color, 0.8))
    else:
        f.line(0.0, v_sh + 0.005, -f.facing * w_sh * 0.5, v_sh + 0.15, 0.018, shade(p.bag_color, 0.8))


def _bag_u(f: Figure, width: float) -> float:
    """Front and back views: body ``u`` of the bag's side, ``width`` out from the centre line."""
    return f.left_sign * (1.0 if f.p.bag_side == "L" else -1.0) * width


def _draw_shoulder_bag(f: Figure) -> None:
    """A cross-body bag at the hip with its strap over the opposite shoulder (from its side: straight down)."""
    p, v_sh, v_hip = f.p, f.v_sh, f.v_hip
    s = 0.05 * p.bag_size
    if f.side:
        if f.bag_visible_side:
            f.line(0.0, v_sh, 0.0, v_hip - 0.02, 0.012, shade(p.bag_color, 0.7))
            f.poly([(-s * 1.2, v_hip - 0.04), (s * 1.2, v_hip - 0.04), (s * 1.2, v_hip + 0.06),
                    (-s * 1.2, v_hip + 0.06)], p.bag_color)
    else:
        bag_u = _bag_u(f, f.w_hip + 0.02)
        f.line(-bag_u * 0.7, v_sh, bag_u * 0.9, v_hip - 0.03, 0.014, shade(p.bag_color, 0.7))
        f.poly([(bag_u - s, v_hip - 0.04), (bag_u + s, v_hip - 0.04), (bag_u + s, v_hip + 0.06),
                (bag_u - s, v_hip + 0.06)], p.bag_color)


def _draw_handbag(f: Figure) -> None:
    """A handbag hanging from the hand on its side (from the other side it is hidden behind the body)."""
    p, v_hip = f.p, f.v_hip
    s = 0.04 * p.bag_size
    if f.side:
        if not f.bag_visible_side:
            return
        hand_u = 0.11 * f.swing * f.facing
    else:
        hand_u = _bag_u(f, f.w_sh + 0.014)
    f.poly([(hand_u - s, v_hip + 0.04), (hand_u + s, v_hip + 0.04), (hand_u + s * 1.2, v_hip + 0.12),
            (hand_u - s * 1.2, v_hip + 0.12)], p.bag_color)

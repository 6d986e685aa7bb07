"""Body parts of a drawn person: legs and shoes, hips or skirt, torso and its pattern, arms.

Each function draws one part into a ``Figure``; ``person.draw_person`` calls them back to front.
"""
from __future__ import annotations

from bau.data.synthetic.figure import Figure
from bau.data.synthetic.palettes import shade


def draw_far_arm(f: Figure) -> None:
    """Side views: the arm behind the body, in shadow, swinging against the near one."""
    p, v_sh, v_hip, w_arm = f.p, f.v_sh, f.v_hip, f.w_arm
    hand_u = -0.11 * f.swing * f.facing
    f.line(0.0, v_sh + 0.02, hand_u, v_hip + 0.03, 2 * w_arm, shade(p.skin, 0.75))
    sleeve_t = 0.35 if p.sleeves == "short" else 0.9
    f.line(0.0, v_sh + 0.02, hand_u * sleeve_t, v_sh + 0.02 + (v_hip + 0.03 - v_sh - 0.02) * sleeve_t,
           2 * w_arm * 1.1, shade(p.top, 0.75))


def draw_legs(f: Figure) -> None:
    """Both legs (bare under shorts and skirts), the shorts' legs and the shoes; the far leg is shaded."""
    p, swing, facing = f.p, f.swing, f.facing
    if f.side:
        stride = 0.11 * p.stride * swing
        feet = [(0.0, facing * stride, 0.0), (0.0, -facing * stride, 0.012 * abs(swing))]
    else:
        spread = 0.045 * p.build
        feet = [(-spread, -spread * 1.1, 0.02 * max(0.0, swing)), (spread, spread * 1.1, 0.02 * max(0.0, -swing))]
    for k, (hip_u, foot_u, lift) in enumerate(feet):
        _draw_leg(f, hip_u, foot_u, lift, far=f.side and k == 1)


def _draw_leg(f: Figure, hip_u: float, foot_u: float, lift: float, far: bool) -> None:
    """One leg from ``hip_u`` to the foot at ``foot_u``, lifted by ``lift`` off the ground."""
    p, v_hip, v_knee, w_leg = f.p, f.v_hip, f.v_knee, f.w_leg
    v_ankle = 1.0 - f.shoe_h - lift
    leg_color = p.bottom if p.bottom_kind == "trousers" else p.skin
    if far:
        leg_color = shade(leg_color, 0.8)
    f.poly([(hip_u - w_leg, v_hip), (hip_u + w_leg, v_hip), (foot_u + w_leg * 0.8, v_ankle),
            (foot_u - w_leg * 0.8, v_ankle)], leg_color)
    if p.bottom_kind == "shorts":
        t = (v_knee - 0.02 - v_hip) / (v_ankle - v_hip)
        ku = hip_u + (foot_u - hip_u) * t
        f.poly([(hip_u - w_leg * 1.1, v_hip), (hip_u + w_leg * 1.1, v_hip), (ku + w_leg * 1.05, v_knee - 0.02),
                (ku - w_leg * 1.05, v_knee - 0.02)], shade(p.bottom, 0.8) if far else p.bottom)
    toe = 0.035 * f.facing if f.side else 0.0
    shoe = shade(p.shoes, 0.8) if far else p.shoes
    f.poly([(foot_u - w_leg * 0.95 + min(0.0, toe), v_ankle), (foot_u + w_leg * 0.95 + max(0.0, toe), v_ankle),
            (foot_u + w_leg * 0.95 + max(0.0, toe), 1.0 - lift), (foot_u - w_leg * 0.95 + min(0.0, toe), 1.0 - lift)],
           shoe)


def draw_hips(f: Figure) -> None:
    """The waist of trousers and shorts, or a skirt: a trapezoid from the hip to above the knee."""
    p, v_hip, w_hip = f.p, f.v_hip, f.w_hip
    if p.bottom_kind == "trousers" or p.bottom_kind == "shorts":
        f.poly([(-w_hip, v_hip - 0.01), (w_hip, v_hip - 0.01), (w_hip, v_hip + 0.04), (-w_hip, v_hip + 0.04)],
               p.bottom)
    else:
        f.poly([(-w_hip, v_hip - 0.01), (w_hip, v_hip - 0.01), (w_hip * 1.6, f.v_knee - 0.03),
                (-w_hip * 1.6, f.v_knee - 0.03)], p.bottom)


def draw_torso(f: Figure) -> None:
    """Neck, the top from the shoulders to its hem, and rounded shoulders."""
    p, v_sh, v_end, w_sh, w_hip = f.p, f.v_sh, f.v_end, f.w_sh, f.w_hip
    f.line(0.0, f.v_head + f.r_head * 0.6, 0.0, v_sh + 0.01, 0.05 * p.build, p.skin)  # neck
    f.poly([(-w_sh, v_sh), (w_sh, v_sh), (w_hip * 1.08, v_end), (-w_hip * 1.08, v_end)], p.top)
    f.ellipse(-w_sh - 0.012, v_sh - 0.008, -w_sh + 0.05, v_sh + 0.04, p.top)
    f.ellipse(w_sh - 0.05, v_sh - 0.008, w_sh + 0.012, v_sh + 0.04, p.top)


def _band(f: Figure, v0: float, v1: float) -> None:
    """A horizontal band across the torso between heights ``v0`` and ``v1``, in the second colour."""
    f.poly([(-f.half_width(v0), v0), (f.half_width(v0), v0), (f.half_width(v1), v1), (-f.half_width(v1), v1)],
           f.p.second)


def draw_pattern(f: Figure) -> None:
    """The top's pattern: stripes, a chest band, an open jacket or a front logo (only seen from the front)."""
    p, v_sh, v_end, w_sh = f.p, f.v_sh, f.v_end, f.w_sh
    if p.pattern == "stripes":
        v = v_sh + 0.03
        while v + p.stripe_period * 0.5 < v_end - 0.01:
            _band(f, v, v + p.stripe_period * 0.5)
            v += p.stripe_period
    elif p.pattern == "band":
        _band(f, v_sh + 0.07, v_sh + 0.12)
    elif p.pattern == "jacket":  # open jacket: the inner shirt shows in front, a sliver from the side
        if f.view == "front":
            f.poly([(-0.3 * w_sh, v_sh), (0.3 * w_sh, v_sh), (0.22 * w_sh, v_end), (-0.22 * w_sh, v_end)], p.second)
        elif f.side:
            facing = f.facing
            edge = facing * w_sh
            f.poly([(edge - facing * 0.02, v_sh), (edge, v_sh), (facing * f.w_hip, v_end),
                    (facing * f.w_hip - facing * 0.015, v_end)], p.second)
    elif p.pattern == "logo" and f.view == "front":
        _draw_logo(f)


def _draw_logo(f: Figure) -> None:
    """The front logo on the chest: a circle, square, triangle or diamond."""
    p = f.p
    s = 0.04 * p.build
    vc = f.v_sh + 0.1
    if p.logo_shape == "circle":
        f.ellipse(-s, vc - s, s, vc + s, p.second)
    elif p.logo_shape == "square":
        f.poly([(-s, vc - s), (s, vc - s), (s, vc + s), (-s, vc + s)], p.second)
    elif p.logo_shape == "triangle":
        f.poly([(0.0, vc - s * 1.1), (s * 1.1, vc + s), (-s * 1.1, vc + s)], p.second)
    else:
        f.poly([(0.0, vc - s * 1.2), (s, vc), (0.0, vc + s * 1.2), (-s, vc)], p.second)


def draw_arms(f: Figure) -> None:
    """The arms in front of the torso (one in a side view, two otherwise), with hands and sleeves."""
    p, v_sh, w_sh, w_arm, swing = f.p, f.v_sh, f.w_sh, f.w_arm, f.swing
    sleeve_t = 0.35 if p.sleeves == "short" else 0.9
    if f.side:
        arms = [(0.0, 0.11 * swing * f.facing)]
    else:
        arms = [(-w_sh + w_arm * 0.6, -w_sh - 0.014), (w_sh - w_arm * 0.6, w_sh + 0.014)]
    for sh_u, hand_u in arms:
        v_hand = f.v_hip + 0.03 - (0.0 if f.side else 0.015 * abs(swing))
        f.line(sh_u, v_sh + 0.02, hand_u, v_hand, 2 * w_arm, p.skin)
        f.ellipse(hand_u - w_arm, v_hand - w_arm * 0.6, hand_u + w_arm, v_hand + w_arm * 1.2, p.skin)
        f.line(sh_u, v_sh + 0.02, sh_u + (hand_u - sh_u) * sleeve_t, v_sh + 0.02 + (v_hand - v_sh - 0.02) * sleeve_t,
               2 * w_arm * 1.12, p.top)

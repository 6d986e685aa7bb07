"""Synthetic multi-domain pedestrians: bau's built-in data set when no real re-ID data is at hand.

``generate(out_dir)`` draws several *domains* of cartoon pedestrians and writes each one in the
Market-1501 layout, so the ordinary Market parser reads them::

    out_dir/synth_a/bounding_box_train/0001_c3s1_004211_01.jpg
    out_dir/synth_a/bounding_box_test/...
    out_dir/synth_a/query/...
    out_dir/synthetic.json          # options, seed, per-domain statistics and styles

Why it is a fair stand-in for a domain-generalization benchmark:

* An **identity** is a person model with fixed clothing colours, a pattern (stripes, a chest band,
  an open jacket, a front logo), hair style and colour, shoes, an optional bag (backpack,
  cross-body bag on one side, handbag) and body proportions. Clothing colours come from a small
  shared palette with skewed weights (many people wear black, grey, navy...), so colour alone does
  not tell identities apart: the cues are *combinations and details*.
* Every image of an identity changes **viewpoint** (front/back/left/right: the logo is only on
  the front, the backpack covers the back, a side bag shows only from its side), **pose** (gait
  phase swings legs and arms), **scale and crop offset**, **partial occlusion** (a pole, a box or
  barrier, another pedestrian in front) and **lighting** (gain and a shadow gradient).
* **Domains** differ the way real data sets do: scene types and palettes (brick walls, facades,
  vegetation, shop fronts, pavement, asphalt, indoor tiles), colour temperature, saturation,
  contrast, resolution (a low-res domain is rendered small and upsampled), blur, sensor noise,
  JPEG quality, camera count, images per identity, occlusion rate and the local clothing fashion
  (summer vs winter wear).

Determinism: every random draw comes from a NumPy generator keyed by ``(seed, domain, what,
ids...)``, never from shared state, so the same seed gives byte-identical JPEGs whatever the
number of worker processes or the order in which chunks finish.

Splits follow Market: about half the ids train, the rest test; for each test id one image per
camera goes to ``query`` and the rest to ``bounding_box_test``. Every camera of an id holds at
least two images and every id is seen by at least two cameras, so each query has a gallery match
from another camera (the Market protocol ignores same-id same-camera gallery entries).

The modules, bottom up: ``palettes`` (colours, wardrobe, colour jitter) and ``draws`` (weighted
choices) -> ``styles`` (``DomainStyle``, ``PRESETS``, ``random_style``, ``domain_style``) ->
``identity`` (``Person``, ``sample_person``) -> ``figure`` (body coordinates, ``VIEWS``) -> ``body``,
``head``, ``bags`` (the parts) -> ``person`` (``draw_person``); ``scene`` (backgrounds) -> ``camera``
(``Camera``, ``make_camera``) -> ``render`` (``render_image``, ``colour_transform``); ``domains``
(``domain_names``, ``SPLIT_DIRS``, ``plan_domain``) -> ``dataset`` (``generate``, ``format_stats``).
This package re-exports the public names of each.
"""
from bau.data.synthetic.camera import Camera, camera_canvas, make_camera
from bau.data.synthetic.dataset import GENERATOR_VERSION, format_stats, generate
from bau.data.synthetic.domains import SPLIT_DIRS, Shot, domain_names, plan_domain
from bau.data.synthetic.draws import choose
from bau.data.synthetic.figure import VIEWS
from bau.data.synthetic.identity import Person, sample_person
from bau.data.synthetic.palettes import (
                                         BAGS,
                                         HAIR,
                                         HAIR_STYLES,
                                         HAIR_WEIGHTS,
                                         LOGO_SHAPES,
                                         PALETTE,
                                         PATTERNS,
                                         RGB,
                                         SHOES,
                                         SKIN,
)
from bau.data.synthetic.person import draw_person
from bau.data.synthetic.render import colour_transform, render_image
from bau.data.synthetic.styles import PRESETS, DomainStyle, domain_style, random_style

_choose = choose  # the name of ``draws.choose`` before the package split (tests use it)

__all__ = [
    "BAGS", "Camera", "DomainStyle", "GENERATOR_VERSION", "HAIR", "HAIR_STYLES", "HAIR_WEIGHTS", "LOGO_SHAPES",
    "PALETTE", "PATTERNS", "PRESETS", "Person", "RGB", "SHOES", "SKIN", "SPLIT_DIRS", "Shot", "VIEWS",
    "camera_canvas", "choose", "colour_transform", "domain_names", "domain_style", "draw_person", "format_stats",
    "generate", "make_camera", "plan_domain", "random_style", "render_image", "sample_person",
]

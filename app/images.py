"""Small image helpers for display: thumbnails as data URLs (t-SNE hover) and coloured frames.

Reading goes through ``bau.data.images.read_image``, so a broken image file is a ``BauError``
naming it rather than a PIL traceback.
"""
from __future__ import annotations

import base64
import io
from typing import Tuple

import numpy as np
from PIL import Image, ImageOps

from bau.data.images import read_image

# Colours of the retrieval page's frames: same identity as the query, another identity.
MATCH = (46, 160, 67)
MISMATCH = (214, 39, 40)


def thumbnail_data_url(path: str, height: int = 128, quality: int = 80) -> str:
    """``data:image/jpeg;base64,...`` of the image at ``path`` scaled to ``height`` pixels."""
    img = read_image(path)
    width = max(1, round(img.width * height / max(img.height, 1)))
    buf = io.BytesIO()
    img.resize((width, height), Image.BILINEAR).save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_uint8(image: np.ndarray) -> np.ndarray:
    """``[H, W, 3]`` float in [0, 1] or uint8 -> uint8."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return a


def framed(image: np.ndarray, color: Tuple[int, int, int], size: Tuple[int, int] = (128, 64),
           border: int = 4) -> np.ndarray:
    """The image resized to ``size`` (height, width) inside a ``border``-pixel frame of ``color``."""
    img = Image.fromarray(to_uint8(image)).resize((size[1], size[0]), Image.BILINEAR)
    return np.asarray(ImageOps.expand(img, border=border, fill=color))


def load_rgb(path: str, size: Tuple[int, int] = (128, 64)) -> np.ndarray:
    """The image at ``path`` as uint8 ``[height, width, 3]``."""
    return np.asarray(read_image(path).resize((size[1], size[0]), Image.BILINEAR))

"""Optional JPEG for camera images on slow links (simplejpeg, imported lazily; 4:2:0, q≈90).

The header is read before decoding so a small malicious JPEG cannot claim a huge image.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vla_async.extras import install_hint


class ImageCodecError(ValueError):
    """An image could not be encoded or decoded."""


def _simplejpeg() -> Any:
    try:
        import simplejpeg
    except ModuleNotFoundError as exc:
        raise ImageCodecError(f"JPEG images need simplejpeg: {install_hint('jpeg')}") from exc
    return simplejpeg


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """HxWx3 (RGB) or HxWx1 uint8 → JPEG bytes with 4:2:0 chroma subsampling."""
    image = np.ascontiguousarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3):
        raise ImageCodecError(f"JPEG needs an HxWx1 or HxWx3 uint8 image, got {image.dtype} {image.shape}")
    colorspace = "RGB" if image.shape[2] == 3 else "GRAY"
    return _simplejpeg().encode_jpeg(image, quality=int(quality), colorspace=colorspace, colorsubsampling="420")


def decode_jpeg(data: bytes | memoryview, shape: tuple[int, ...]) -> np.ndarray:
    """JPEG bytes → uint8 array that must have exactly `shape` (H, W, C)."""
    sj = _simplejpeg()
    raw = bytes(data)
    try:
        height, width, _, _ = sj.decode_jpeg_header(raw)
    except Exception as exc:  # simplejpeg raises ValueError/RuntimeError on corrupt data
        raise ImageCodecError(f"not a JPEG image ({type(exc).__name__})") from None
    if (height, width) != tuple(shape[:2]) or len(shape) != 3 or shape[2] not in (1, 3):
        raise ImageCodecError(f"JPEG is {height}x{width}, header says {tuple(shape)}")
    try:
        image = sj.decode_jpeg(raw, colorspace="RGB" if shape[2] == 3 else "GRAY")
    except Exception as exc:
        raise ImageCodecError(f"corrupt JPEG ({type(exc).__name__})") from None
    return image.reshape(shape)

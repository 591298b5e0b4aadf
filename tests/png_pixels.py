"""Decode a PNG (8-bit RGB or RGBA, not interlaced, as Chromium writes screenshots) into its
pixels with the standard library's zlib and numpy: enough to check that a chart was drawn."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np


def read_png(path: str | Path) -> np.ndarray:
    """The image as a (height, width, 3) uint8 array of RGB pixels."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    position, idat, header = 8, [], None
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or colour_type not in (2, 6) or interlace:
        raise ValueError(f"{path}: only 8-bit RGB/RGBA, non-interlaced PNGs are read here")
    channels = 3 if colour_type == 2 else 4
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8).reshape(height, stride + 1)
    pixels = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.int32)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:  # None
            row = line
        elif kind == 2:  # Up
            row = (line + previous) & 0xFF
        elif kind == 1:  # Sub: each byte adds the decoded byte one pixel to the left
            row = np.cumsum(line.reshape(width, channels), axis=0).reshape(stride) & 0xFF
        else:  # Average or Paeth: sequential within the row
            row = _unfilter_sequential(kind, line.tolist(), previous.tolist(), channels)
        pixels[y] = row
        previous = np.asarray(row, dtype=np.int32)
    return pixels.reshape(height, width, channels)[:, :, :3]


def _unfilter_sequential(kind: int, line: list[int], up: list[int], bpp: int) -> np.ndarray:
    out = [0] * len(line)
    for i, value in enumerate(line):
        left = out[i - bpp] if i >= bpp else 0
        above = up[i]
        if kind == 3:
            out[i] = (value + ((left + above) >> 1)) & 0xFF
        else:
            upper_left = up[i - bpp] if i >= bpp else 0
            estimate = left + above - upper_left
            pa, pb, pc = abs(estimate - left), abs(estimate - above), abs(estimate - upper_left)
            predictor = left if pa <= pb and pa <= pc else above if pb <= pc else upper_left
            out[i] = (value + predictor) & 0xFF
    return np.asarray(out, dtype=np.int32)


def count_colour(pixels: np.ndarray, hex_colour: str) -> int:
    """How many pixels have exactly this colour (e.g. "#1f77b4")."""
    rgb = [int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)]
    return int(np.all(pixels == np.asarray(rgb, dtype=np.uint8), axis=2).sum())

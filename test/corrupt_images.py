"""Compressed images that pass every check made before decoding but fail in the decoder, so the
decoder itself reports them (libpng prints to stderr from C): what the node must catch."""
from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def png_with_broken_deflate(rgb: np.ndarray) -> bytes:
    """A PNG whose chunks are whole and CRC-correct but whose IDAT holds a broken zlib stream."""
    png = cv2.imencode(".png", rgb)[1].tobytes()
    start = png.index(b"IDAT") - 4
    length = struct.unpack(">I", png[start:start + 4])[0]
    payload = b"\x00" + png[start + 9:start + 8 + length]  # zlib header byte 0: "incorrect header check"
    chunk = struct.pack(">I", length) + b"IDAT" + payload + struct.pack(">I", zlib.crc32(b"IDAT" + payload))
    return png[:start] + chunk + png[start + 12 + length:]

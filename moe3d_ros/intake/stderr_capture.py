"""Catch what C libraries print to stderr (libpng, libjpeg through OpenCV) while a block runs, so
that a stream of corrupt images becomes counted, rate-limited log lines instead of a flood."""
from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

_LOCK = threading.Lock()
_DECODER_LINE = re.compile(r"libpng|libjpeg|JPEG|PNG|imgcodecs|IDAT|IHDR|zlib", re.IGNORECASE)


def is_decoder_line(line: str) -> bool:
    """A line an image decoder printed (not one of ours that merely mentions PNG)."""
    return bool(_DECODER_LINE.search(line)) and "moe3d" not in line


@contextmanager
def capture_stderr() -> Iterator[list[str]]:
    """Lines written to file descriptor 2 while the block runs (filled in when it ends).

    The descriptor is process-wide: lines other threads wrote meanwhile are caught too; the
    caller passes on those it does not own (`emit`). A file, not a pipe, takes the output, so a
    library that prints a lot can never block on a full pipe.
    """
    lines: list[str] = []
    with _LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines.extend(sink.read().decode("utf-8", errors="replace").splitlines())


def emit(line: str) -> None:
    """Write a caught line back to the real stderr."""
    os.write(2, (line + "\n").encode("utf-8", errors="replace"))

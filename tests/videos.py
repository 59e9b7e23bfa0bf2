"""A small test video (a red disc moving across grey, MJPG in AVI): what camera and serve tests play."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_video(path: Path, frames: int = 7, size: tuple[int, int] = (96, 72), step: int = 8) -> Path:
    """``frames`` frames of ``size`` (width, height); the disc moves ``step`` pixels a frame. MJPG is an
    encoder every OpenCV wheel has; callers skip without OpenCV themselves."""
    import cv2

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert writer.isOpened()
    for i in range(frames):
        frame = np.full((size[1], size[0], 3), 90, dtype=np.uint8)
        cv2.circle(frame, (15 + step * i, size[1] // 2), 14, (0, 0, 255), -1)
        writer.write(frame)
    writer.release()
    return path

"""Native chatter on fd 2 (TensorFlow, absl, LiteRT banners) hidden from a segedge command's terminal.

TensorFlow's C++ and LiteRT write these lines to file descriptor 2 directly, past Python's logging, so
only a filter on the descriptor itself can hold them back; ``segedge --verbose`` leaves it off.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from typing import Any

# Lines TensorFlow, absl and LiteRT's C++ write straight to fd 2 that say nothing to act on; hidden
# unless --verbose. Only INFO lines and named banners: C++ warnings (W...), errors (E...) and anything
# else pass through as written, as they are written.
NOISE = re.compile(rb"|".join([
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR",
    rb"I\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] ",  # an absl INFO line (oneDNN custom operations, cpu_feature_guard)
    rb"To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags",
    rb"E\d{4} [\d:.]+ +\d+ cuda_(dnn|fft|blas)\.cc:\d+\] Unable to register cu\w+ factory",
    rb"E\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\] computation placer already registered",
    rb"W\d{4} [\d:.]+ +\d+ \w+\.cc:\d+\] TF-TRT Warning: Could not find TensorRT",
    rb"INFO: Created TensorFlow Lite XNNPACK delegate for CPU\.",
    rb"INFO: Initialized TensorFlow Lite runtime\.",
    rb"fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+",
]))


class QuietStderr:
    """Drop ``NOISE`` lines that native code writes to fd 2; everything else is passed on as it comes.

    fd 2 becomes a pipe read by a thread; Python's ``sys.stderr`` (segedge's own messages, progress
    bars) writes to a copy of the real stderr, so it stays a terminal where it was one. Child
    processes inherit the filtered fd 2. Only the ``segedge`` script uses it (``main``), never an
    import or a test's ``CliRunner``.
    """

    def __init__(self) -> None:
        self._real: int | None = None
        self._stderr: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._real is not None:
            return
        try:
            sys.stderr.flush()
            real = os.dup(2)
            read_fd, write_fd = os.pipe()
        except (OSError, AttributeError, ValueError):
            return
        stderr = sys.stderr
        sys.stderr = open(real, "w", buffering=1, encoding=getattr(stderr, "encoding", None) or "utf-8",  # noqa: SIM115
                          errors="backslashreplace", closefd=False)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._real, self._stderr = real, stderr
        self._thread = threading.Thread(target=self._pump, args=(read_fd, real), name="segedge-stderr", daemon=True)
        self._thread.start()

    @staticmethod
    def _pump(read_fd: int, real: int) -> None:
        pending = b""
        with open(read_fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                *lines, pending = (pending + chunk).split(b"\n")
                if len(pending) > 65536:  # no newline in sight: pass it on
                    lines, pending = [*lines, pending], b""
                kept = b"".join(line + b"\n" for line in lines if not NOISE.match(line))
                if kept:
                    os.write(real, kept)
        if pending and not NOISE.match(pending):
            os.write(real, pending)

    def stop(self) -> None:
        """fd 2 and ``sys.stderr`` as they were; what is still in the pipe is written first."""
        if self._real is None:
            return
        try:
            sys.stderr.flush()
        finally:
            sys.stderr = self._stderr
            os.dup2(self._real, 2)  # this process's last write end of the pipe: the reader sees its end
            if self._thread is not None:
                self._thread.join(timeout=5.0)  # a child still holding the pipe keeps it open
            if self._thread is None or not self._thread.is_alive():
                os.close(self._real)
            self._real = self._thread = None

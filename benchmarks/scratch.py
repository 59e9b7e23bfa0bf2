"""A benchmark's own temporary folder, removed when the script exits (normally, by sys.exit or by an error)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path


def scratch_folder(prefix: str) -> Path:
    """A fresh folder under the system temp folder for the photos, videos and outputs one run writes.

    Removed at exit, so a run leaves nothing behind in /tmp; only a killed run leaves it (its name says
    which script made it)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder

"""Everything one server holds, handed to every endpoint: the model, the camera feed, the limits, the counters."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

from segedge.serve.holder import ModelHolder
from segedge.serve.live import LiveFeed
from segedge.serve.stats import Stats
from segedge.serve.uploads import Limits

DEFAULT_QUEUE = 4  # uploads that may wait for the model beyond those it is segmenting
MAX_STREAMS = 8  # MJPEG viewers at once: each costs a connection and its share of the JPEG bytes


class Admission:
    """At most ``capacity`` uploads admitted (running or waiting); the next one is answered 503 at once.

    Memory stays bounded: an upload is read only after it is admitted, so a burst costs at most
    ``capacity`` bodies, never a queue that grows with the burst.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self.active = 0
        self.refused = 0

    def enter(self) -> bool:
        with self._lock:
            if self.active >= self.capacity:
                self.refused += 1
                return False
            self.active += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.active -= 1


@dataclass
class ServeState:
    holder: ModelHolder
    stats: Stats
    limits: Limits
    workers: int  # uploads segmented at once (the model's copies)
    queue: int = DEFAULT_QUEUE
    token: str | None = None
    feed: LiveFeed | None = None
    alpha: float = 0.5
    stopping: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)
    streams: int = 0

    def __post_init__(self) -> None:
        self.admission = Admission(self.workers + self.queue)

"""What the server counts: Prometheus metrics for fleets, and the same figures as JSON for the page.

One ``Stats`` per server, on its own ``CollectorRegistry`` (never the process-global one), so two
servers in one test process count apart. Stage times are histograms for Prometheus and a rolling
mean for the page; requests are counted by endpoint and status, frames by the camera feed.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

STAGES = ("capture", "prepare", "inference", "mask", "encode")
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
WINDOW = 30  # samples in the page's rolling means

__all__ = ["CONTENT_TYPE_LATEST", "Stats", "STAGES"]


class Stats:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("segedge_frames", "Camera frames segmented", registry=r)
        self.dropped = Counter("segedge_frames_dropped", "Camera frames dropped (a full queue on a live source)",
                               registry=r)
        self.stage = Histogram("segedge_stage_seconds", "Time per stage of one frame or upload",
                               ["source", "stage"], buckets=BUCKETS, registry=r)
        self.requests = Counter("segedge_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=r)
        self.inflight = Gauge("segedge_segment_inflight", "POST /v1/segment requests admitted and not finished",
                              registry=r)
        self.camera_up = Gauge("segedge_camera_up", "1 while the camera sends frames", registry=r)
        self.fps = Gauge("segedge_camera_fps", "Frames segmented per second, rolling", registry=r)
        self.reloads = Counter("segedge_reloads", "Model reloads by result", ["result"], registry=r)
        self.model = Info("segedge_model", "The model being served", registry=r)
        self.started = time.time()
        self._lock = threading.Lock()
        self._recent: dict[tuple[str, str], deque[float]] = {}

    def observe(self, source: str, stage: str, seconds: float) -> None:
        self.stage.labels(source, stage).observe(seconds)
        with self._lock:
            self._recent.setdefault((source, stage), deque(maxlen=WINDOW)).append(seconds)

    def recent_ms(self, source: str) -> dict[str, float]:
        """Rolling mean per stage in ms, for the page."""
        with self._lock:
            return {stage: round(1000 * sum(v) / len(v), 2) for (src, stage), v in self._recent.items()
                    if src == source and v}

    def set_model(self, info: dict) -> None:
        self.model.info({key: str(value) for key, value in info.items()})

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

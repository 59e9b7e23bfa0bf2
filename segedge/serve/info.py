"""What /v1/model, /healthz and the page say about the model being served."""

from __future__ import annotations

import time

from segedge.serve.holder import Served
from segedge.serve.state import ServeState


def model_info(served: Served) -> dict:
    """The served artifact in a few fields: the page's model box and the Prometheus info metric."""
    seg = served.segmenter
    each = [backend.threads for backend in getattr(seg.backend, "backends", [seg.backend])]
    return {"description": seg.describe(), "file": seg.path.name, "artifact": seg.artifact,
            "runtime": seg.info.runtime, "precision": seg.info.precision, "bytes": seg.info.bytes,
            "sha256": seg.info.sha256, "threads": sum(each), "copies": seg.copies, "upsample": seg.upsample,
            "input": [seg.manifest.preprocess.height, seg.manifest.preprocess.width],
            "generation": served.generation}


def parity(served: Served) -> dict:
    """The bundle's own proof of this artifact (export's verification, from the manifest) and the self-check."""
    verify = dict(served.segmenter.info.verify or {})
    return {"export_verification": verify, "self_check": served.check.to_json()}


def model_document(served: Served) -> dict:
    seg = served.segmenter
    return {"model": model_info(served), "classes": seg.manifest.classes, "palette": seg.manifest.palette,
            "void": seg.manifest.void, "parity": parity(served), "manifest": seg.manifest.to_dict(),
            "metadata": getattr(seg.backend, "metadata", None),  # embedded in the file, checked against the manifest
            "loaded_at": served.loaded_at}


def health(state: ServeState) -> dict:
    served = state.holder.loaded
    camera = state.feed.status() if state.feed is not None else None
    ok = served is not None and (camera is None or camera["state"] in ("streaming", "starting"))
    return {"ok": ok, "status": "ok" if ok else "degraded", "pid": state.pid,
            "uptime_s": round(time.time() - state.started, 1),
            "model_loaded": served is not None,
            "model": served.segmenter.describe() if served is not None else None,
            "camera": {k: camera[k] for k in ("source", "state", "detail", "frames", "dropped", "fps",
                                               "sessions", "reconnect_in_s", "last_session")} if camera else None,
            "last_reload": state.holder.last_reload}


def live_status(state: ServeState) -> dict:
    """The page's polling answer: camera, per-stage times, the model, uploads."""
    with state.holder.use() as served:
        model = model_info(served)
        proof = parity(served)
        classes, palette = served.segmenter.manifest.classes, served.segmenter.manifest.palette
    if state.feed is not None:
        state.feed.watch()  # the page is open: draw its overlays and shares
    return {"health": health(state), "camera": state.feed.status() if state.feed is not None else None,
            "stages_ms": {"camera": state.stats.recent_ms("camera"), "upload": state.stats.recent_ms("upload")},
            "model": model, "parity": proof, "classes": classes, "palette": palette,
            "uploads": {"active": state.admission.active, "capacity": state.admission.capacity,
                        "refused": state.admission.refused}}

"""Running the app: a bound socket, uvicorn, and the signals a service gets.

SIGTERM (systemd's stop) and Ctrl-C stop within 2 s: the MJPEG streams and the camera are told at
once (a stream never ends by itself, so uvicorn's graceful wait would otherwise run its full
timeout), uvicorn gets a 1 s grace for uploads in flight, and the exit is 0 with one line. SIGHUP
(systemd's ``ExecReload``) reloads the bundle as ``POST /v1/reload`` does, in a thread, and says
what happened on stderr.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import IO

import uvicorn

from segedge.serve.app import build_app
from segedge.serve.info import model_info
from segedge.serve.state import ServeState
from segedge.util.errors import ConfigError

GRACE_S = 1.0  # uvicorn's wait for requests in flight after SIGTERM, within the 2 s a stop may take
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound before the model loads is too late to find a busy port: bound first."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off only on sockets whose proto says TCP; with proto 0 every
    # keep-alive answer (headers, then body) waited ~40 ms for a delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port, or stop what "
                          "uses it") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def exposed_without_token(host: str, token: str | None) -> bool:
    return token is None and host not in LOOPBACK


class ServeServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: ServeState) -> None:
        super().__init__(config)
        self.state = state
        self.signalled: int | None = None

    def handle_exit(self, sig: int, frame) -> None:  # type: ignore[override]
        self.signalled = sig
        self.state.stopping.set()  # streams end now, not after the grace period
        if self.state.feed is not None:
            self.state.feed.halt()  # the pipeline stops, the camera is not opened again; the lifespan joins
        super().handle_exit(sig, frame)


def reload_on_hangup(state: ServeState, log: Callable[[str], None]) -> None:
    """SIGHUP -> a reload in its own thread (a signal handler must not load a model)."""

    def reload() -> None:
        from segedge.serve.holder import ReloadBusy

        try:
            answer = state.holder.reload()
        except ReloadBusy:
            log("SIGHUP: a reload is already running")
            return
        state.stats.reloads.labels("ok" if answer["ok"] else "failed").inc()
        if answer["ok"]:
            with state.holder.use() as served:
                state.stats.set_model(model_info(served))
            log(f"reloaded: {answer['model']} (self-check passed)")
        else:
            log(f"reload failed, still serving the old model: {answer['error']}")

    def on_hangup(signum: int, frame) -> None:
        threading.Thread(target=reload, name="segedge-serve-reload", daemon=True).start()

    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, on_hangup)


def serve(state: ServeState, sock: socket.socket, stderr: IO[str] | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C; 0 after a clean stop."""
    stderr = stderr or sys.stderr

    def log(message: str) -> None:
        stderr.write(f"segedge serve: {message}\n")
        stderr.flush()

    config = uvicorn.Config(build_app(state), log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=GRACE_S, server_header=False)
    server = ServeServer(config, state)
    reload_on_hangup(state, log)
    # uvicorn re-raises the stopping signal once it has shut down, with the handlers it found: these, so
    # that a clean stop ends here with its line and exit 0 instead of the default handler's kill
    previous = {sig: signal.signal(sig, lambda signum, frame: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        state.holder.close()
        sock.close()
    if server.signalled is not None:
        log(f"stopped ({signal.Signals(server.signalled).name})")
    return 0

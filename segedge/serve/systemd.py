"""``segedge serve ... --systemd-unit``: a unit file that starts the same command at boot.

The unit runs the command line it was printed from, with absolute paths (systemd has no working
directory or PATH of the user's), as the user who printed it, in the ``video`` group (cameras).
The token is never written into the unit (unit files are world-readable): it goes in
``/etc/segedge/serve.env`` as ``SEGEDGE_SERVE_TOKEN=...``, mode 600, which the unit reads.
"""

from __future__ import annotations

import getpass
import shlex
import shutil
import sys
from pathlib import Path

ENV_FILE = "/etc/segedge/serve.env"
TOKEN_ENV = "SEGEDGE_SERVE_TOKEN"


def executable() -> str:
    """The segedge script this process runs from (absolute), else ``python -m segedge.cli``'s equivalent."""
    script = Path(sys.argv[0])
    if script.name == "segedge" and script.exists():
        return str(script.resolve())
    found = shutil.which("segedge")
    return str(Path(found).resolve()) if found else f"{sys.executable} -c 'from segedge.cli import main; main()'"


def unit_text(args: list[str], model: Path, user: str | None = None) -> str:
    """The unit for ``segedge serve`` with ``args`` (the options, already without --systemd-unit/--token)."""
    command = " ".join([executable(), "serve", shlex.quote(str(model.resolve())), *map(shlex.quote, args)])
    return f"""[Unit]
Description=segedge serve: {model.resolve().name} over HTTP
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user or getpass.getuser()}
SupplementaryGroups=video
# {TOKEN_ENV}=... (chmod 600); the leading '-' lets the unit start without the file
EnvironmentFile=-{ENV_FILE}
ExecStart={command}
ExecReload=/bin/kill -HUP $MAINPID
KillSignal=SIGTERM
TimeoutStopSec=5
Restart=on-failure
RestartSec=5
NoNewPrivileges=yes
PrivateTmp=yes

[Install]
WantedBy=multi-user.target
"""

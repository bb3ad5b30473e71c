"""How the Panel dashboard is served: `panel serve dashboards/app.py` with login when configured.

Login is Panel's basic auth: `PVP_DASHBOARD_USERS_FILE` (JSON {"user": "password"}) and
`PVP_DASHBOARD_COOKIE_SECRET`. Without them the dashboard is open, which only the demo should do.
"""

from __future__ import annotations

import json
import secrets
import sys
from pathlib import Path

from pv_platform.settings import Settings

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "dashboards" / "app.py"


def login_configured(settings: Settings) -> bool:
    return settings.dashboard_users_file is not None


def check_users_file(path: Path) -> None:
    """A users file must be a JSON object of user -> password; anything else is named and refused."""
    try:
        users = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(
            f"PVP_DASHBOARD_USERS_FILE {path}: cannot read it as JSON ({exc})"
        ) from None
    if (
        not isinstance(users, dict)
        or not users
        or not all(isinstance(k, str) and isinstance(v, str) and v for k, v in users.items())
    ):
        raise ValueError(
            f'PVP_DASHBOARD_USERS_FILE {path}: expected {{"user": "password", ...}} with non-empty passwords'
        )


def panel_command(settings: Settings, address: str, port: int) -> list[str]:
    """The `panel serve` command line for the dashboard (the cookie secret is random per start when unset,
    which logs everyone out on a restart)."""
    panel = str(Path(sys.executable).parent / "panel")
    cmd = [
        panel, "serve", str(APP), "--address", address, "--port", str(port),
        "--allow-websocket-origin", f"{address}:{port}", "--allow-websocket-origin", f"localhost:{port}",
        "--num-procs", "1",
    ]  # fmt: skip
    for origin in settings.dashboard_origins:
        cmd += ["--allow-websocket-origin", origin]
    if login_configured(settings):
        check_users_file(settings.dashboard_users_file)
        secret = settings.dashboard_cookie_secret or secrets.token_urlsafe(32)
        cmd += ["--basic-auth", str(settings.dashboard_users_file), "--cookie-secret", secret]
    return cmd

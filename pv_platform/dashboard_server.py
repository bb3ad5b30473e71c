"""How the Panel dashboard is served: `panel serve dashboards/app.py` with login when configured.

Login is Panel's basic auth behind a throttle (`pv_platform.dashboard_login`): `PVP_DASHBOARD_USERS_FILE`
(JSON {"user": "password"}) and `PVP_DASHBOARD_COOKIE_SECRET` (or `..._FILE`), passed to Panel in its
environment, never on its command line. Without a users file the dashboard is open (the demo only).
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
    """The `panel serve` command line for the dashboard, run through this module (`main`) so the login
    is throttled. It holds no secret: /proc/<pid>/cmdline is readable by every local user; the cookie
    secret goes in the environment (`panel_env`)."""
    cmd = [
        sys.executable, "-m", "pv_platform.dashboard_server", "serve", str(APP), "--address", address,
        "--port", str(port), "--allow-websocket-origin", f"{address}:{port}",
        "--allow-websocket-origin", f"localhost:{port}", "--num-procs", "1",
    ]  # fmt: skip
    for origin in settings.dashboard_origins:
        cmd += ["--allow-websocket-origin", origin]
    if settings.dashboard_trust_proxy_headers:  # the client's address from X-Forwarded-For
        cmd.append("--use-xheaders")
    if login_configured(settings):
        check_users_file(settings.dashboard_users_file)
        cmd += ["--basic-auth", str(settings.dashboard_users_file)]
    return cmd


def cookie_secret(settings: Settings) -> str:
    """`PVP_DASHBOARD_COOKIE_SECRET`, else the content of `PVP_DASHBOARD_COOKIE_SECRET_FILE`, else a
    random one (which logs everyone out on a restart)."""
    if settings.dashboard_cookie_secret:
        return settings.dashboard_cookie_secret
    if settings.dashboard_cookie_secret_file:
        path = Path(settings.dashboard_cookie_secret_file)
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(
                f"PVP_DASHBOARD_COOKIE_SECRET_FILE {path}: cannot read it ({exc})"
            ) from None
        if len(secret) < 32:
            raise ValueError(
                f"PVP_DASHBOARD_COOKIE_SECRET_FILE {path}: at least 32 characters, please"
            )
        return secret
    return secrets.token_urlsafe(32)


def panel_env(settings: Settings, env: dict[str, str]) -> dict[str, str]:
    """The environment of the Panel server: `env` plus the cookie secret (when a login is configured),
    where Panel reads it (PANEL_COOKIE_SECRET): never on the command line."""
    out = {k: v for k, v in env.items() if k not in ("PANEL_COOKIE_SECRET", "BOKEH_COOKIE_SECRET")}
    if login_configured(settings):
        out["PANEL_COOKIE_SECRET"] = cookie_secret(settings)
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m pv_platform.dashboard_server serve ...`: Panel's command line with the throttled login."""
    from panel.command import main as panel_main

    from pv_platform.dashboard_login import install

    install()
    # Panel int()s every numeric query value of a page's URL (`?days=<5000 digits>` raised out of the
    # page); tornado bounds a request line at 64 KiB, so this many digits can arrive at most
    sys.set_int_max_str_digits(max(sys.get_int_max_str_digits(), 70_000))
    sys.argv = ["panel", *(sys.argv[1:] if argv is None else argv)]
    panel_main()


if __name__ == "__main__":
    main()

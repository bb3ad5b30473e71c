"""The dashboard's login, hardened: failed logins are throttled per address and per user name, logged
without the password, and the password is compared in constant time.

Panel's basic auth checks a password as fast as it is asked (~750 guesses/s over one connection).
`LoginThrottle` is the policy (pure, a monotonic clock passed in); `ThrottledLoginHandler` puts it in
front of Panel's login form; `install()` makes Panel's basic auth provider use it (`pvp dashboard`
runs Panel through `python -m pv_platform.dashboard_server`, which calls it).
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("pv_platform.dashboard_login")
NAME_CHARS = 64  # of a user name in a log line and a throttle key


@dataclass
class _Failures:
    count: int = 0
    last_s: float = 0.0


@dataclass
class LoginThrottle:
    """Exponential back-off after too many failed logins.

    - per address: after `free_per_address` failures (any user name) from one address, that address
      waits `base_delay_s`, then twice that after the next failure, ... up to `max_delay_s`;
    - per user name: after `free_per_user` failures for one name (from any address), every address that
      has failed for that name waits the same way. An address that never failed for that name is not
      held up by it, so the real user still gets in while someone else guesses their password.

    The password of a held-up attempt is not checked. Failures are forgotten `forget_after_s` after the
    last one; the table is bounded (`max_keys`, oldest dropped first).
    """

    free_per_address: int = 10
    free_per_user: int = 5
    base_delay_s: float = 1.0
    max_delay_s: float = 900.0
    forget_after_s: float = 3600.0
    max_keys: int = 100_000
    _failures: dict[tuple, _Failures] = field(default_factory=dict)

    def _delay_s(self, key: tuple, free: int, now_s: float) -> float:
        f = self._failures.get(key)
        if f is None or f.count < free:
            return 0.0
        backoff = min(self.base_delay_s * 2.0 ** (f.count - free), self.max_delay_s)
        return max(0.0, f.last_s + backoff - now_s)

    def wait_s(self, user: str, address: str, now_s: float) -> float:
        """Seconds `address` must wait before its password for `user` is checked (0: check it now)."""
        user = user[:NAME_CHARS]
        wait = self._delay_s(("address", address), self.free_per_address, now_s)
        if ("pair", user, address) in self._failures:
            wait = max(wait, self._delay_s(("user", user), self.free_per_user, now_s))
        return wait

    def record(self, user: str, address: str, ok: bool, now_s: float) -> None:
        """Count a checked attempt: a failure for the address, the name and the pair; a success
        forgets the pair's failures only (a valid login elsewhere never clears an address)."""
        user = user[:NAME_CHARS]
        if ok:
            self._failures.pop(("pair", user, address), None)
            return
        self._forget_old(now_s)
        for key in (("address", address), ("user", user), ("pair", user, address)):
            f = self._failures.setdefault(key, _Failures())
            f.count, f.last_s = f.count + 1, now_s

    def failures(self, *key: str) -> int:
        f = self._failures.get(tuple(key))
        return f.count if f else 0

    def _forget_old(self, now_s: float) -> None:
        if len(self._failures) < self.max_keys:
            return
        for key in [k for k, f in self._failures.items() if now_s - f.last_s > self.forget_after_s]:
            del self._failures[key]
        for key, _ in sorted(self._failures.items(), key=lambda kv: kv[1].last_s)[
            : max(0, len(self._failures) - self.max_keys // 2)
        ]:
            del self._failures[key]


THROTTLE = LoginThrottle()


def check_password(users_file: str | Path, user: str, password: str) -> bool:
    """Whether `password` is `user`'s in the users file, compared in constant time."""
    users = json.loads(Path(users_file).read_text(encoding="utf-8"))
    expected = users.get(user) if isinstance(users, dict) else None
    if not isinstance(expected, str):
        hmac.compare_digest(password.encode(), password.encode())  # same work for unknown names
        return False
    return hmac.compare_digest(password.encode(), expected.encode())


def _handler_class():
    from panel.auth import CDN_DIST, BasicLoginHandler
    from panel.config import config

    class ThrottledLoginHandler(BasicLoginHandler):
        """Panel's login form with `THROTTLE` in front of the password check."""

        def post(self) -> None:
            user = self.get_argument("username", "")
            password = self.get_argument("password", "")
            address = self.request.remote_ip or "?"
            now_s = time.monotonic()
            wait = THROTTLE.wait_s(user, address, now_s)
            if wait > 0:
                log.warning(
                    "dashboard login refused (too many failures): user %r from %s, retry in %.0f s",
                    user[:NAME_CHARS], address, math.ceil(wait),
                )  # fmt: skip
                self.set_status(429)
                self.set_header("Retry-After", str(math.ceil(wait)))
                self.write(
                    self._login_template.render(
                        login_endpoint=self._login_endpoint,
                        errormessage=f"Too many failed logins: try again in {math.ceil(wait)} s.",
                        PANEL_CDN=CDN_DIST,
                    )
                )
                return
            ok = bool(user) and check_password(config.basic_auth, user, password)
            THROTTLE.record(user, address, ok, now_s)
            if not ok:
                log.warning(
                    "dashboard login failed: user %r from %s (%d failures from this address,"
                    " %d for this user)", user[:NAME_CHARS], address,
                    THROTTLE.failures("address", address), THROTTLE.failures("user", user[:NAME_CHARS]),
                )  # fmt: skip
            super().post()  # Panel's own check (same file) sets the cookie or shows the error

        def _validate(self, username: str, password: str) -> bool:
            return bool(username) and check_password(config.basic_auth, username, password)

    return ThrottledLoginHandler


def install() -> None:
    """Make Panel's basic auth provider serve `ThrottledLoginHandler` as its login page."""
    import panel.auth

    handler = _handler_class()

    def login_handler(provider):
        handler._login_endpoint = provider._login_endpoint
        handler._login_template = provider._login_template
        return handler

    panel.auth.BasicAuthProvider.login_handler = property(login_handler)

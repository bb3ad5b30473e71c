"""One engine for real-time and KPI alerts: deduplicate by fingerprint, cooldown per rule, a global rate
limit, the persisted lifecycle with auto-resolve, and notifications that never lose or block an alert."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pv_platform.alerts.model import AlertCandidate
from pv_platform.storage.alerts import AlertStore

log = logging.getLogger(__name__)
Callback = Callable[
    [str, dict], object
]  # (event: "opened" | "resolved", alert row) -> None or awaitable


@dataclass
class EnginePolicy:
    cooldown_s: dict[str, float] = field(
        default_factory=lambda: {"*": 300.0}
    )  # after a resolve, per rule
    max_new_per_minute: int = 30  # global rate limit of newly opened alerts
    auto_resolve_after_s: float = 120.0  # condition clear this long: resolve by itself

    def cooldown(self, rule: str) -> timedelta:
        return timedelta(seconds=self.cooldown_s.get(rule, self.cooldown_s.get("*", 0.0)))


@dataclass
class ProcessResult:
    opened: list[dict] = field(default_factory=list)
    updated: int = 0
    resolved: list[dict] = field(default_factory=list)
    suppressed: list[tuple[str, str]] = field(default_factory=list)  # (fingerprint, why)


class AlertEngine:
    """Turns candidates into alert lifecycles in the `alerts` table."""

    def __init__(self, store: AlertStore, policy: EnginePolicy | None = None) -> None:
        self.store = store
        self.policy = policy or EnginePolicy()
        self.callbacks: list[Callback] = []

    def register_callback(self, callback: Callback) -> None:
        """Called with ("opened" | "resolved", alert) for every change; sync or async, failures are logged."""
        self.callbacks.append(callback)

    def process(
        self,
        candidates: Iterable[AlertCandidate],
        now: datetime,
        rules: set[str] | None = None,
        site_id: str | None = None,
    ) -> ProcessResult:
        """Apply one evaluation: `candidates` hold now; active alerts of `rules` (of `site_id`, when an
        evaluation judged one site only) that are not among them are clear (and resolve after the hold
        time). `rules=None` means every rule of the candidates' source."""
        result = ProcessResult()
        active = self.store.active()
        seen: set[str] = set()
        for c in candidates:
            fp = c.fingerprint
            if fp in seen:
                continue
            seen.add(fp)
            if fp in active:
                self.store.touch(active[fp]["id"], now, c.message, c.context)
                result.updated += 1
                continue
            last = self.store.last_resolved_at(fp)
            if last is not None and now - last < self.policy.cooldown(c.rule):
                result.suppressed.append(
                    (fp, f"cooldown until {(last + self.policy.cooldown(c.rule)).isoformat()}")
                )
                continue
            if (
                self.store.opened_since(now - timedelta(minutes=1))
                >= self.policy.max_new_per_minute
            ):
                result.suppressed.append((fp, f"rate limit {self.policy.max_new_per_minute}/min"))
                log.warning("alert rate limit reached; %s not opened", fp)
                continue
            alert = self.store.open(
                fp, c.rule, c.severity.name, c.site_id, c.device_id, c.message, c.context, now
            )
            result.opened.append(alert)
            log.warning("alert opened: %s %s %s", c.severity.name, fp, c.message)
            self._notify("opened", alert)
        for fp, alert in active.items():
            if fp in seen or (rules is not None and alert["rule"] not in rules):
                continue
            if site_id is not None and alert["site_id"] != site_id:
                continue
            clear_since = alert["clear_since"]
            if clear_since is None:
                self.store.mark_clear(alert["id"], now)
            elif now - clear_since >= timedelta(
                seconds=self.policy.auto_resolve_after_s
            ) and self.store.resolve(
                alert["id"], "auto", f"clear since {clear_since.isoformat()}", now
            ):
                alert = {**alert, "state": "resolved", "resolved_at": now, "resolved_by": "auto"}
                result.resolved.append(alert)
                self._notify("resolved", alert)
        return result

    def acknowledge(
        self, alert_id: int, by: str, comment: str = "", now: datetime | None = None
    ) -> bool:
        return self.store.acknowledge(alert_id, by, comment, now or datetime.now().astimezone())

    def resolve(
        self, alert_id: int, by: str, comment: str = "", now: datetime | None = None
    ) -> bool:
        return self.store.resolve(alert_id, by, comment, now or datetime.now().astimezone())

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until the notifiers have delivered what they were given (or `timeout_s` passed)."""
        deadline = time.monotonic() + timeout_s
        done = True
        for callback in self.callbacks:
            flush = getattr(callback, "flush", None)
            if flush is not None:
                done &= bool(flush(max(0.0, deadline - time.monotonic())))
        return done

    def _notify(self, event: str, alert: dict) -> None:
        for callback in self.callbacks:
            try:
                outcome = callback(event, alert)
                if inspect.isawaitable(outcome):
                    _run_awaitable(outcome)
            except Exception:  # a failing notifier never loses or blocks the alert
                log.exception("alert callback %r failed for %s", callback, alert.get("fingerprint"))


def _run_awaitable(awaitable) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        threading.Thread(target=asyncio.run, args=(awaitable,), daemon=True).start()
        return
    loop.create_task(awaitable)

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

from pv_platform import clock
from pv_platform.alerts.incidents import pick_incident, scope_of
from pv_platform.alerts.model import STICKY, AlertCandidate, Severity
from pv_platform.storage.alerts import AlertStore
from pv_platform.storage.incidents import IncidentStore

log = logging.getLogger(__name__)
# (event, alert row) -> None or awaitable. Events: "opened" and "resolved" once per incident opening and
# end (the alert that opened or closed it, with "incident"; a closed incident reopened by a late symptom
# is "opened" again, its incident marked "reopened", and "resolved" again when it ends), "acknowledged"
# per alert, "escalated" per incident.
Callback = Callable[[str, dict], object]
UPDATE_EVERY = timedelta(
    minutes=10
)  # an open alert's message gains an update line at most this often
MAX_UPDATES = 12  # ... and keeps the opening text and the newest this many updates


def appended_message(
    message: str, update: str, now: datetime, last_update: datetime | None
) -> str | None:
    """The alert's message with `update` appended as "[date HH:MM UTC] text" (the opening text stays
    first); None when nothing is to be appended (the same text as the newest line, or less than
    UPDATE_EVERY after `last_update`, the opening or the previous update; None: append now)."""
    lines = message.split("\n")
    newest = lines[-1].split("] ", 1)[-1] if len(lines) > 1 else lines[0]
    if update == newest or update == lines[0]:
        return None
    if last_update is not None and now - last_update < UPDATE_EVERY:
        return None
    updates = [*lines[1:], f"[{now:%Y-%m-%d %H:%M} UTC] {update}"][-MAX_UPDATES:]
    return "\n".join([lines[0], *updates])


@dataclass
class EnginePolicy:
    cooldown_s: dict[str, float] = field(
        default_factory=lambda: {"*": 300.0}
    )  # after a resolve, per rule
    max_new_per_minute: int = 30  # global rate limit of newly opened alerts
    auto_resolve_after_s: float = 120.0  # condition clear this long: resolve by itself
    escalate_after_s: float | None = None  # an unacknowledged CRITICAL incident this old: escalated

    def cooldown(self, rule: str) -> timedelta:
        return timedelta(seconds=self.cooldown_s.get(rule, self.cooldown_s.get("*", 0.0)))


@dataclass
class ProcessResult:
    opened: list[dict] = field(default_factory=list)
    updated: int = 0
    resolved: list[dict] = field(default_factory=list)
    suppressed: list[tuple[str, str]] = field(default_factory=list)  # (fingerprint, why)


class AlertLifecycle:
    """Turns candidates into alert lifecycles in the `alerts` table."""

    def __init__(
        self,
        store: AlertStore,
        policy: EnginePolicy | None = None,
        kinds: dict[tuple[str, str], str] | None = None,
    ) -> None:
        self.store = store
        self.incidents = IncidentStore(store.engine)
        self.policy = policy or EnginePolicy()
        self.kinds = (
            kinds or {}
        )  # (site, device) -> kind: which alerts are a site's weather station's
        self.callbacks: list[Callback] = []
        self._active_after: frozenset[str] | None = None  # as the last `process` left them

    def active_fingerprints(self) -> frozenset[str]:
        """Fingerprints of the active alerts: as this engine's last `process` left them (a range run
        asks at each of its thousands of windows; the next `process` reads the table again), else
        read from the table."""
        if self._active_after is None:
            return frozenset(self.store.active())
        return self._active_after

    def register_callback(self, callback: Callback) -> None:
        """Called with ("opened" | "resolved", alert) for every change; sync or async, failures are logged."""
        self.callbacks.append(callback)

    def process(
        self,
        candidates: Iterable[AlertCandidate],
        now: datetime,
        rules: set[str] | None = None,
        cleared: set[str] | None = None,
        site_id: str | None = None,
    ) -> ProcessResult:
        """Apply one evaluation: `candidates` hold now; active alerts of `rules` (of `site_id`, when an
        evaluation judged one site only) that are not among them are clear (and resolve after the hold
        time). `rules=None` means every rule of the candidates' source. An alert marked sticky (a total
        loss) resolves only when its fingerprint is in `cleared`: the rule saw the device produce again
        (night or missing data is not evidence)."""
        result = ProcessResult()
        active = self.store.active()
        seen: set[str] = set()
        for c in candidates:
            fp = c.fingerprint
            if fp in seen:
                continue
            seen.add(fp)
            if fp in active:
                self._update(active[fp], c, now)
                result.updated += 1
                continue
            last = self.store.last_resolved_at(fp)
            if last is not None and now - last < self.policy.cooldown(c.rule):
                result.suppressed.append(
                    (fp, f"cooldown until {(last + self.policy.cooldown(c.rule)).isoformat()}")
                )
                continue
            if (
                self.store.opened_between(now - timedelta(minutes=1), now)
                >= self.policy.max_new_per_minute
            ):  # the minute before the evaluated time (a re-evaluated past hour is not judged by later alerts)
                result.suppressed.append((fp, f"rate limit {self.policy.max_new_per_minute}/min"))
                log.warning("alert rate limit reached; %s not opened", fp)
                continue
            alert = self.store.open(
                fp, c.rule, c.severity.name, c.site_id, c.device_id, c.message, c.context, now
            )
            result.opened.append(alert)
            log.warning("alert opened: %s %s %s", c.severity.name, fp, c.message)
            incident, new = self._group(alert, now)
            if new:  # a symptom of an open incident is not notified again
                self._notify(
                    "opened", {**alert, "incident_id": incident["id"], "incident": incident}
                )
        self._clear_absent(active, seen, now, rules, cleared, site_id, result)
        resolved = {a["fingerprint"] for a in result.resolved}
        if resolved or self._active_after != frozenset(active):
            # an alert was resolved here or elsewhere since the last call (the first call: maybe):
            # its incident may have ended (a range run makes thousands of calls that change nothing)
            self._close_incidents(now)
        if active or result.opened:  # else every open incident had only resolved alerts: closed
            self._escalate(now)
        self._active_after = frozenset(
            (set(active) - resolved) | {a["fingerprint"] for a in result.opened}
        )
        return result

    def _clear_absent(
        self, active, seen, now, rules, cleared, site_id, result: ProcessResult
    ) -> None:
        """Active alerts of the judged rules (and site) that no candidate holds: mark clear, and resolve
        those clear for the hold time; a sticky alert only once the rule saw its device again."""
        for fp, alert in active.items():
            if fp in seen or (rules is not None and alert["rule"] not in rules):
                continue
            if (alert.get("context") or {}).get(STICKY) and fp not in (cleared or set()):
                continue  # a dead device stays an alert through the night
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

    def _group(self, alert: dict, now: datetime) -> tuple[dict, bool]:
        """Put a new alert into the incident that explains it, or open one it causes (True)."""
        found = pick_incident(alert, self.incidents.candidates(alert["site_id"], now), self.kinds)
        if found is None:
            return self.incidents.create(alert, scope_of(alert, self.kinds)), True
        severity = max(Severity[found["severity"]], Severity[alert["severity"]]).name
        reopened = self.incidents.attach(found, alert, severity)
        log.info(
            "alert %s joins incident %d (%s)", alert["fingerprint"], found["id"], found["title"]
        )
        if reopened is not None:  # its end went out: the reopening does too, and the next end
            log.warning("incident %d reopened by %s", found["id"], alert["fingerprint"])
            return {**reopened, "reopened": True}, True
        return found, False

    def _close_incidents(self, now: datetime) -> None:
        """Close every incident whose alerts are all resolved (here or by hand) and notify it once."""
        for incident in self.incidents.close_finished():
            if self.incidents.mark_notified(incident["id"], "resolved", now):
                cause = self.store.get(incident["cause_alert_id"]) or {}
                self._notify(
                    "resolved", {**cause, "incident_id": incident["id"], "incident": incident}
                )

    def _escalate(self, now: datetime) -> None:
        """Notify ("escalated") each open CRITICAL incident nobody acknowledged in time, once."""
        if self.policy.escalate_after_s is None:
            return
        for incident in self.incidents.due_escalation(now, self.policy.escalate_after_s):
            if self.incidents.mark_notified(incident["id"], "escalated", now):
                cause = self.store.get(incident["cause_alert_id"]) or {}
                log.warning("incident %d escalated: %s", incident["id"], incident["title"])
                self._notify(
                    "escalated", {**cause, "incident_id": incident["id"], "incident": incident}
                )

    def _update(self, alert: dict, c: AlertCandidate, now: datetime) -> None:
        """Still holding: last seen now; severity raised if the candidate's is higher (never lowered);
        the message keeps its opening text and gains an update line now and then."""
        context = {**(alert.get("context") or {}), **c.context}
        if (alert.get("context") or {}).get(STICKY):
            context[STICKY] = True  # once a total loss, resolved only by evidence or a person
        raised = c.severity > Severity[alert["severity"]]
        last = context.get("message_updated_at")
        last_update = (
            None if raised else datetime.fromisoformat(last) if last else alert["opened_at"]
        )
        message = appended_message(alert["message"], c.message, now, last_update)
        if message is not None:
            context["message_updated_at"] = now.isoformat()
        severity = max(Severity[alert["severity"]], c.severity).name
        self.store.touch(alert["id"], now, message or alert["message"], context, severity)

    def acknowledge(
        self, alert_id: int, by: str, comment: str = "", now: datetime | None = None
    ) -> bool:
        """Sign an open alert off; the callbacks hear ("acknowledged", alert)."""
        ok = self.store.acknowledge(alert_id, by, comment, now or clock.now())
        if ok:
            self._notify("acknowledged", self.store.get(alert_id))
        return ok

    def resolve(
        self, alert_id: int, by: str, comment: str = "", now: datetime | None = None
    ) -> bool:
        """Resolve an alert by hand; the callbacks hear ("resolved", alert) when its incident closes."""
        ok = self.store.resolve(alert_id, by, comment, now or clock.now())
        if (
            ok
        ):  # notified once its incident closes: now, with its last alert, or at the next evaluation
            try:
                self._close_incidents(now or clock.now())
            except Exception as exc:  # e.g. the dashboards' read-only role
                log.info("incident of alert %d left for the next evaluation: %s", alert_id, exc)
        return ok

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

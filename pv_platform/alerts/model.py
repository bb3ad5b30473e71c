"""What an alert is: a candidate from a rule, and its persisted lifecycle."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

STICKY = (
    "until_cleared"  # context flag: the alert resolves only when its rule shows the condition clear
)


class Severity(enum.IntEnum):
    INFO = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5


@dataclass(frozen=True)
class AlertCandidate:
    """A rule says: this condition holds now for this device."""

    rule: str
    severity: Severity
    site_id: str
    device_id: str
    message: str
    ts: datetime
    key: str = ""  # distinguishes several alerts of one rule on one device (e.g. the MPPT)
    context: dict = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return ":".join(p for p in (self.rule, self.site_id, self.device_id, self.key) if p)

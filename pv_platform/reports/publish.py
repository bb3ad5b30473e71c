"""Make, store and e-mail one site's report of one period (what the report assets call)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from pv_platform.plant import Site
from pv_platform.reports.content import build_report_data, summary
from pv_platform.reports.delivery import report_message, send, smtp_config
from pv_platform.reports.render import render_html, render_pdf
from pv_platform.settings import Settings
from pv_platform.storage.alerts import AlertStore

log = logging.getLogger(__name__)


@dataclass
class Published:
    """What publishing a report did: sizes, figures, and to whom it was e-mailed (empty: not now)."""

    pdf_bytes: int
    html_bytes: int
    summary: dict
    emailed_to: list[str]
    email_skipped: str  # why no e-mail went out now ("" when one did)


def report_filename(site_id: str, grain: str, period: str, fmt: str) -> str:
    """pvp-report-<site>-<period>.<fmt>, the name of a downloaded or attached report."""
    return (
        f"pvp-report-{site_id}-{period}.{fmt}"
        if grain == "monthly"
        else f"pvp-report-{site_id}-{period}-year.{fmt}"
    )


def recipients_of(site: Site, settings: Settings) -> list[str]:
    """Fleet-wide recipients then the site's own, each once."""
    return list(dict.fromkeys([*settings.report_recipients, *site.report.recipients]))


def publish_report(
    db, site: Site, grain: str, partition_key: str, bounds: tuple[datetime, datetime],
    settings: Settings, now: datetime,
) -> Published:  # fmt: skip
    """Render the period's report from the KPI tables, store PDF and HTML (replacing an older version)
    and, for a closed period with SMTP configured and recipients, e-mail it once (a report regenerated
    after late data is stored again but not sent again)."""
    start, end = bounds
    data = build_report_data(db, site, grain, partition_key, start, end, AlertStore(db.engine))
    pdf, html = render_pdf(data), render_html(data)
    figures = summary(data)
    db.reports.save(site.id, grain, data.period, bounds, pdf, html, figures)
    published = Published(len(pdf), len(html.encode()), figures, [], "")
    config, recipients = smtp_config(settings), recipients_of(site, settings)
    if end > now:
        published.email_skipped = "the period is still running"
    elif config is None:
        published.email_skipped = "no SMTP server configured (PVP_SMTP_HOST)"
    elif not recipients:
        published.email_skipped = (
            "no recipients (PVP_REPORT_RECIPIENTS or the site's report.recipients)"
        )
    elif db.reports.emailed_at(site.id, grain, data.period) is not None:
        published.email_skipped = "already e-mailed"
    if published.email_skipped:
        return published
    msg = report_message(
        config.sender,
        recipients,
        data.title,
        html,
        pdf,
        report_filename(site.id, grain, data.period, "pdf"),
    )
    send(config, msg)
    db.reports.mark_emailed(site.id, grain, data.period, recipients, now)
    published.emailed_to = recipients
    return published

"""E-mail of a report through SMTP (stdlib smtplib): the PDF attached, the HTML as the message body.

Configured by settings (`PVP_SMTP_*`); the password comes from `PVP_SMTP_PASSWORD_FILE` or
`PVP_SMTP_PASSWORD`, is held as a secret and never logged or put on a command line.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from pv_platform.settings import Settings

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """A report e-mail the SMTP server did not take; the message names the server, never the password."""


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to send; `password` is never shown (repr hides it)."""

    host: str
    port: int
    security: str
    user: str | None
    password: str | None
    sender: str

    def __repr__(self) -> str:
        return f"SmtpConfig(host={self.host!r}, port={self.port}, security={self.security!r}, user={self.user!r})"


def smtp_config(settings: Settings) -> SmtpConfig | None:
    """The SMTP settings, or None when no server is configured (reports are then only stored)."""
    if not settings.smtp_host:
        return None
    password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
    if settings.smtp_password_file is not None:
        try:
            password = settings.smtp_password_file.read_text().strip()
        except OSError as exc:
            raise ValueError(
                f"PVP_SMTP_PASSWORD_FILE {settings.smtp_password_file}: cannot read it ({exc.strerror})"
            ) from None
    return SmtpConfig(
        settings.smtp_host, settings.smtp_port, settings.smtp_security, settings.smtp_user,
        password, settings.smtp_from,
    )  # fmt: skip


def report_message(
    sender: str, recipients: list[str], subject: str, html: str, pdf: bytes, filename: str
) -> EmailMessage:
    """A multipart message: a plain-text line, the HTML report as the alternative body, the PDF attached."""
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(recipients), subject
    msg["Date"], msg["Message-ID"] = formatdate(localtime=False), make_msgid(domain="pv-platform")
    msg.set_content(
        f"{subject}\n\nThe report is attached as PDF ({filename}); the HTML version follows."
    )
    msg.add_alternative(html, subtype="html")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=filename)
    return msg


def send(config: SmtpConfig, msg: EmailMessage, timeout_s: float = 30.0) -> None:
    """Deliver one message; DeliveryError naming the server when it fails."""
    context = ssl.create_default_context()
    try:
        if config.security == "ssl":
            client = smtplib.SMTP_SSL(config.host, config.port, timeout=timeout_s, context=context)
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=timeout_s)
        with client:
            if config.security == "starttls":
                client.starttls(context=context)
            if config.user:
                client.login(config.user, config.password or "")
            client.send_message(msg)
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(
            f"SMTP {config.host}:{config.port} ({config.security}) refused or failed: {exc}"
        ) from None
    log.info(
        "report e-mail %r sent to %s through %s:%d",
        msg["Subject"],
        msg["To"],
        config.host,
        config.port,
    )

"""One delivery attempt of one mail to the SMTP server, and what its outcome means.

- accepted (2xx at the end of DATA): sent;
- a 4xx reply (greylisting, a full mailbox, a rate limit), a timeout, a refused or
  lost connection, a TLS failure: tried again on ``ONEPASS_MAIL_RETRY_SCHEDULE``,
  dead once it is spent;
- a 5xx reply (no such mailbox, relaying refused, a message refused): dead at once,
  trying again would get the same answer.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

import aiosmtplib

from onepass.mail.outbox import Mail
from onepass.settings import SmtpServer


@dataclass(frozen=True)
class Outcome:
    sent: bool
    retryable: bool
    code: int | None = None
    error: str | None = None


SENT = Outcome(sent=True, retryable=False)


def message_of(mail: Mail, sender: str) -> EmailMessage:
    """A multipart/alternative message: the text first, the HTML as the alternative."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    # RFC 3834: sent by a program; auto-responders do not answer it.
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    message["Content-Language"] = mail.language  # after the content: set_content clears it
    return message


def _reply_outcome(code: int, message: str) -> Outcome:
    error = f"SMTP {code}: {' '.join(message.split())[:300]}"
    return Outcome(sent=False, retryable=400 <= code < 500, code=code, error=error)


async def send(
    server: SmtpServer, sender: str, mail: Mail, *, seconds: float, local_hostname: str
) -> Outcome:
    """Hand ``mail`` to ``server``. ``local_hostname`` is what EHLO says (given, so
    that no reverse DNS lookup of this machine runs on every mail)."""
    message = message_of(mail, sender)
    try:
        await aiosmtplib.send(
            message,
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.implicit_tls,
            start_tls=server.starttls,
            timeout=seconds,
            local_hostname=local_hostname,
            tls_context=ssl.create_default_context(),
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        refused = exc.recipients[0]
        return _reply_outcome(refused.code, refused.message)
    except aiosmtplib.SMTPResponseException as exc:
        return _reply_outcome(exc.code, exc.message)
    except aiosmtplib.SMTPTimeoutError:
        return Outcome(sent=False, retryable=True, error=f"timed out after {seconds:g} s")
    except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
        # Refused or lost connection, STARTTLS not offered, a certificate not trusted.
        detail = " ".join(str(exc).split())[:300] or type(exc).__name__
        return Outcome(sent=False, retryable=True, error=f"{type(exc).__name__}: {detail}")
    return SENT

"""Logs never carry personal data: emails, phone numbers, postcodes and bank details are redacted.

``RedactPersonalDataFilter`` sits on every handler in LOGGING; ``install_record_factory`` (called when
the app loads) redacts each record as it is created, so handlers configured elsewhere (a test's
caplog, an error reporter) get the redacted text too. The patterns are deliberately broad: a six- or
eight-digit number is redacted even when it is a count, since losing a count from a log costs less
than leaking an account number.
"""

import logging
import re
from typing import Any

REDACTIONS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    # UK numbers in national or international form, spaced or not, and any other E.164 number.
    (re.compile(r"(?<![\w+])(?:\+|00)?44[\s-]?\(?0?\)?(?:[\s-]?\d){9,10}(?!\d)"), "[phone]"),
    (re.compile(r"(?<![\w+])0(?:[\s-]?\d){9,10}(?!\d)"), "[phone]"),
    (re.compile(r"\+\d{8,15}\b"), "[phone]"),
    (re.compile(r"\b[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}\b", re.IGNORECASE), "[postcode]"),
    (re.compile(r"\b\d{2}-\d{2}-\d{2}\b"), "[sort code]"),
    (re.compile(r"\b\d{6}\b|\b\d{8}\b"), "[number]"),
]


def redact(text: str) -> str:
    for pattern, replacement in REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


_formatter = logging.Formatter()


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    if getattr(record, "_fusion_redacted", False):
        return record
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        message = str(record.msg)
    record.msg = redact(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        record.exc_text = _formatter.formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    record._fusion_redacted = True
    return record


class RedactPersonalDataFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_installed = False


def install_record_factory() -> None:
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        return redact_record(previous(*args, **kwargs))

    logging.setLogRecordFactory(factory)
    _installed = True

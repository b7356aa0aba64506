"""Log lines as JSON in production: one object a line, with the request id, still redacted.

Built on python-json-logger (kept up, typed, a small pure-Python package) rather than a hand-written
``json.dumps`` formatter: it already handles the corner cases a log pipeline trips on (exception and
stack text, non-JSON values through ``default=str``, ``%``-style field lists, renames), and what is left
to us is the policy below.

Only the fields in ``FIELDS`` are written. A record's ``extra`` attributes are dropped, since they are not
redacted: Django's request logger, for one, passes the whole ``HttpRequest`` (query string and all) as
``extra``. The message and the exception text are redacted by ``fusion_site.log_redaction`` as the
record is made; the exception is formatted again here, so it is redacted again here.
"""

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from fusion_site.log_redaction import redact, redact_record

FIELDS = ("time", "level", "logger", "message", "request_id", "status_code", "exc_info", "stack_info")
_RENAMES = {"asctime": "time", "levelname": "level", "name": "logger"}


class JsonLinesFormatter(JsonFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", ["asctime", "levelname", "name", "message", "request_id"])
        kwargs.setdefault("rename_fields", _RENAMES)
        kwargs.setdefault("datefmt", "%Y-%m-%dT%H:%M:%S%z")
        super().__init__(*args, **kwargs)

    def formatException(self, ei: Any) -> str:
        return redact(str(super().formatException(ei)))

    def formatStack(self, stack_info: str) -> str:
        return redact(str(super().formatStack(stack_info)))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        kept = {key: value for key, value in log_data.items() if key in FIELDS}
        # A line written outside Django (gunicorn's own) has no request id filter in front of it.
        if kept.get("request_id") is None:
            kept["request_id"] = "-"
        return kept

    def format(self, record: logging.LogRecord) -> str:
        # Handlers configured outside Django's LOGGING (gunicorn's) have no redaction filter.
        return super().format(redact_record(record))

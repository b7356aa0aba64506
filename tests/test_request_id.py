"""Every response and every log line written while handling a request carry the request's id; the
JSON lines of production parse, and are still redacted."""

import io
import json
import logging
import uuid

import pytest
from django.test import Client

from fusion_site.log_format import JsonLinesFormatter
from fusion_site.log_redaction import RedactPersonalDataFilter
from fusion_site.request_id import HEADER, RequestIdFilter, accepted_or_new, current_request_id


def is_uuid4(text: str) -> bool:
    try:
        return uuid.UUID(text).version == 4
    except ValueError:
        return False


@pytest.fixture
def json_log():
    """The production handler (LOGGING's console handler with the json formatter), writing to a buffer,
    on the logger Django reports unanswered requests to."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactPersonalDataFilter())
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonLinesFormatter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    yield stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_response_carries_a_new_uuid4_request_id():
    first = Client().get("/healthz")[HEADER]
    second = Client().get("/healthz")[HEADER]

    assert is_uuid4(first) and is_uuid4(second)
    assert first != second


def test_the_proxys_request_id_is_kept_when_it_is_sane():
    offered = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"

    response = Client().get("/healthz", HTTP_X_REQUEST_ID=offered)

    assert response[HEADER] == offered


@pytest.mark.parametrize(
    "offered",
    [
        "",
        "short",
        "x" * 65,
        "id with spaces-1234",
        "abc123456\ninjected log line",
        "jo.bloggs@example.com",
        "<script>alert(1)</script>",
    ],
    ids=["empty", "too-short", "too-long", "spaces", "newline", "email", "markup"],
)
def test_an_insane_request_id_is_replaced(offered):
    assert is_uuid4(accepted_or_new(offered))


def test_outside_a_request_lines_carry_a_dash():
    assert current_request_id.get() == "-"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "job done", None, None)
    RequestIdFilter().filter(record)
    assert record.request_id == "-"


def test_a_line_logged_inside_a_request_is_json_with_its_request_id_and_redacted(db, json_log):
    """A 404 is logged by Django after the middleware has returned (so after its id would be reset,
    were it reset there), with the path, which here holds an email address and a phone number."""
    offered = "req-0123456789abcdef"

    response = Client().get("/no-such-page/jo.bloggs@example.com/07700900123/", HTTP_X_REQUEST_ID=offered)

    assert response.status_code == 404
    logged = lines(json_log)
    assert len(logged) == 1, json_log.getvalue()
    line = logged[0]
    assert line["request_id"] == offered == response[HEADER]
    assert line["level"] == "WARNING"
    assert line["logger"] == "django.request"
    assert line["status_code"] == 404
    assert "[email]" in line["message"] and "[phone]" in line["message"]
    assert "jo.bloggs" not in json_log.getvalue() and "07700900123" not in json_log.getvalue()
    # Django passes the request itself as an extra: dropped, since its repr holds the path in clear.
    assert "request" not in line
    assert set(line) <= {"time", "level", "logger", "message", "request_id", "status_code"}
    # After the response, lines (a task, a command) no longer carry that id.
    assert current_request_id.get() == "-"


def test_exception_text_is_redacted_in_json_lines(json_log):
    logger = logging.getLogger("django.request")
    try:
        raise ValueError("no customer jo.bloggs@example.com at SW1A 1AA")
    except ValueError:
        logger.exception("Lookup failed")

    line = lines(json_log)[0]
    assert "ValueError" in line["exc_info"]
    assert "jo.bloggs" not in line["exc_info"] and "SW1A" not in line["exc_info"]
    assert "[email]" in line["exc_info"] and "[postcode]" in line["exc_info"]


def test_each_request_gets_its_own_id_in_its_lines(db, json_log):
    ids = [f"req-{n:016d}" for n in range(3)]
    for request_id in ids:
        Client().get("/no-such-page/", HTTP_X_REQUEST_ID=request_id)

    assert [line["request_id"] for line in lines(json_log)] == ids

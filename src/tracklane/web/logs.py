"""Log lines: the id of the request a line was logged in, and the two formats (`TRACKLANE_LOG_FORMAT`).

The edge (`web/edge.py`) sets `REQUEST_ID` for the time each request is handled (it is also the
`X-Request-Id` of the answer), so every line logged on its behalf carries it. `json` writes one object per
line: `time` (UTC, ISO 8601 with milliseconds), `level`, `logger`, `message`, `request_id` (in a request),
`exception` (the traceback, when there is one) and the `extra` fields a call passed; `text` writes the
classic `time level logger: message` line, with `[request id]` in a request.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

REQUEST_ID: ContextVar[str | None] = ContextVar("tracklane_request_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: The attributes every LogRecord has: anything else on a record came from a call's `extra`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "request_id"}


class RequestIdFilter(logging.Filter):
    """Puts the current request's id (or None) on every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The plain line, with the request id in brackets when there is one."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id is None:
            return text
        head, sep, rest = text.partition(": ")
        return f"{head} [{request_id}]{sep}{rest}"


def handler(log_format: str) -> logging.Handler:
    """A handler on standard error writing lines in this format (`json`, else text)."""
    stream = logging.StreamHandler()
    stream.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    stream.addFilter(RequestIdFilter())
    return stream

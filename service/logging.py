"""Structured logs: one JSON object per line on stderr, secrets removed.

Every record of the service's own loggers (``communiques.*``) and of uvicorn's is written as
``{"ts", "level", "logger", "msg", ...fields}``; a record's ``extra={"fields": {...}}`` becomes
top-level keys, and an exception becomes an ``exc`` string (tracebacks go to the logs, never
into responses). Before anything is written, secrets are removed: the configured API key
wherever it appears, ``Bearer`` credentials, ``Authorization`` values, and query-string
parameters named like a key (``key``, ``api_key``, ``token``, ``password``, ``secret``…).
Request headers are never logged at all.

``COMMUNIQUES_LOG_LEVEL`` sets the level of the service's loggers (default ``INFO``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"
_BEARER = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=\-]{4,}")
_AUTH_HEADER = re.compile(r"(?i)(\"?(?:authorization|x-api-key|cookie)\"?\s*[:=]\s*\"?)[^\"\n,}]+")
_SECRET_PARAM = re.compile(
    r"(?i)([?&;\s\"']|^)((?:api[_-]?key|apikey|key|access[_-]?token|token|password|passwd|"
    r"secret|auth|authorization|signature|sig)=)[^&\s\"'#]*"
)
_HANDLER_MARK = "_communiques_json"
LOGGERS = ("communiques", "uvicorn", "uvicorn.error", "uvicorn.access")


class Redactor:
    """Removes secrets from text; the literal values given are removed wherever they appear."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
        text = _AUTH_HEADER.sub(lambda m: m.group(1) + REDACTED, text)
        return _SECRET_PARAM.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)

    def value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {k: (REDACTED if _is_secret_name(str(k)) else self.value(v))
                    for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value


def _is_secret_name(name: str) -> bool:
    return bool(re.fullmatch(
        r"(?i)(authorization|cookie|api[_-]?key|key|token|password|secret|x-api-key)", name
    ))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, secrets removed (see the module doc)."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.redact = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, version, status = record.args
            out.update(msg="access", client=str(client), method=str(method),
                       path=self.redact(str(path)), http=str(version), status=status)
        else:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a bad format string must not lose the record
                message = str(record.msg)
            out["msg"] = self.redact(message)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                if key not in out:
                    out[key] = self.redact.value(value)
        if record.exc_info:
            out["exc"] = self.redact(self.formatException(record.exc_info))
        elif record.exc_text:
            out["exc"] = self.redact(record.exc_text)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(secrets: Iterable[str] = (), level: str | None = None) -> None:
    """JSON lines on stderr for the service's and uvicorn's loggers (idempotent)."""
    formatter = JsonFormatter(Redactor(secrets))
    level_name = (level or os.environ.get("COMMUNIQUES_LOG_LEVEL", "INFO")).upper()
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if getattr(handler, _HANDLER_MARK, False) or name.startswith("uvicorn"):
                logger.removeHandler(handler)
        handler = logging.StreamHandler()
        setattr(handler, _HANDLER_MARK, True)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.propagate = False
        if name == "communiques":
            logger.setLevel(getattr(logging, level_name, logging.INFO))

"""Text that cannot be stored: NUL bytes and lone surrogates.

PostgreSQL refuses both (NUL in text, unencodable surrogates in UTF-8), SQLite keeps them and they break
every later rendering. Neither is anything a person meant to type, so they are dropped, and only they:
everything else is stored as typed and escaped per surface when rendered. Applied at the HTTP door
(bot/ingress.py) and, for text that arrives any other way (a 📌'd message fetched from Slack, a Factory
error message), on every statement's parameters (bot/db.py)."""

from __future__ import annotations

import re
from typing import Any

_UNSAFE = re.compile("[\x00\ud800-\udfff]")


def clean_text(value: str) -> str:
    return _UNSAFE.sub("", value) if _UNSAFE.search(value) else value


def clean(value: Any) -> Any:
    """`clean_text` over every string (keys too) of a JSON-like value."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(clean(v) for v in value)
    return value


def clean_parameters(parameters: Any) -> Any:
    """DB-API parameters (a sequence, a mapping, or a list of either for executemany) with strings cleaned;
    the same object when nothing needed cleaning (the common case costs one regex scan per string)."""
    if isinstance(parameters, dict):
        if not any(isinstance(v, str) and _UNSAFE.search(v) for v in parameters.values()):
            return parameters
        return {k: clean_text(v) if isinstance(v, str) else v for k, v in parameters.items()}
    if isinstance(parameters, list | tuple):
        if parameters and isinstance(parameters[0], dict | list | tuple):
            cleaned = [clean_parameters(p) for p in parameters]
            return (
                parameters
                if all(a is b for a, b in zip(cleaned, parameters, strict=True))
                else type(parameters)(cleaned)
            )
        if not any(isinstance(v, str) and _UNSAFE.search(v) for v in parameters):
            return parameters
        return type(parameters)(clean_text(v) if isinstance(v, str) else v for v in parameters)
    return parameters

"""Secrets in a config: redacted wherever a config is recorded, hashed or printed.

A value is secret when its key names a credential (`api_key`, `token`, `password`,
`secret`, ...) or when it is the user-info of a URL (`http://user:pass@host`).
`redact` returns a copy with every such value replaced by `***` (URLs keep their
host); `remember` notes the secret strings of a loaded config so that `mask` can
take them out of any line before it is printed, whatever code built the line.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

MASK = "***"
_SECRET_KEY = re.compile(
    r"(?i)(^|[_.-])(api[_-]?key|apikey|token|secret|password|passwd|passphrase|"
    r"credentials?|authori[sz]ation|private[_-]?key|access[_-]?key)($|[_.-])"
)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s@?#]+)@")
_known: set[str] = set()
_lock = threading.Lock()


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def redact_text(text: str) -> str:
    """`text` with URL user-info replaced: `http://***@host/...`."""
    return _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)


def redact(value: Any) -> Any:
    """A copy of a config value with every secret replaced by `***`."""
    if isinstance(value, dict):
        return {
            k: MASK if is_secret_key(k) and v is not None else redact(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_text(value)
    return value


def secret_values(value: Any) -> list[str]:
    """Every secret string inside a config value (key-named values and URL user-info)."""
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if is_secret_key(k) and v is not None and not isinstance(v, dict | list):
                out.append(str(v))
            else:
                out += secret_values(v)
    elif isinstance(value, list | tuple):
        for v in value:
            out += secret_values(v)
    elif isinstance(value, str):
        for m in _USERINFO.finditer(value):
            user, _, password = m.group(2).partition(":")
            out += [m.group(2), password] if password else [user]
    return out


def remember(value: Any) -> None:
    """Note the secrets of a loaded config, so `mask` removes them from any message."""
    found = {s for s in secret_values(value) if len(s) >= 4}
    with _lock:
        _known.update(found)


def mask(text: str, extra: Iterable[str | None] = ()) -> str:
    """`text` without any remembered (or `extra`) secret, nor URL user-info."""
    with _lock:
        known = sorted(_known | {s for s in extra if s and len(s) >= 4}, key=len, reverse=True)
    for s in known:
        text = text.replace(s, MASK)
    return redact_text(text)

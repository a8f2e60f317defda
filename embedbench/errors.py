"""Error classes: one clear line for the user, and the exit code it deserves."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EmbedbenchError(Exception):
    """A failure reported as one line, without a traceback (exit code 1)."""

    exit_code = 1


class UserError(EmbedbenchError):
    """Bad input: a config, a name, a file or a text the user can fix (exit code 2)."""

    exit_code = 2


class ProviderError(EmbedbenchError):
    """A provider failed after retries, or answered something unusable (exit code 1)."""


def unknown_name(
    kind: str, name: str, allowed: Iterable[str], listing: str | None = None
) -> UserError:
    """`unknown technique 'binnary' (did you mean 'binary'?); allowed: ...`"""
    allowed = sorted(allowed)
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return UserError(f"unknown {kind} '{name}'{hint}; allowed: {listing or ', '.join(allowed)}")

"""Validation of choice parameters against an Enum, with a helpful message."""

from __future__ import annotations

import difflib
from enum import Enum
from typing import TypeVar

from sarcoma_risk.errors import InvalidInput

E = TypeVar("E", bound=Enum)


def check_choice(value: object, choices: type[E], field: str) -> E:
    """Return the member of ``choices`` whose value equals ``value``.

    Raises :class:`InvalidInput` naming ``field``, the valid values and the closest one.
    """
    if isinstance(value, choices):
        return value
    text = str(value).strip()
    for member in choices:
        if member.value == text or member.name.lower() == text.lower():
            return member
    valid = [str(m.value) for m in choices]
    close = difflib.get_close_matches(text.lower(), [v.lower() for v in valid], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise InvalidInput(f"{field}: {text!r} is not valid; expected one of {', '.join(valid)}.{hint}")

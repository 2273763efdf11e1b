"""MRI sequence sets: which sequences a radiology model reads, and which model a case gets.

The method reads the fat-suppressed T2 (``t2fs``) and the contrast-enhanced T1 (``t1ce``), but many
cases have only one of them. So one radiology model is trained per *sequence set*: ``t2fs+t1ce``,
``t2fs`` and ``t1ce`` (a set's name lists its sequences in channel order, joined by ``+``). A case
is scored by the model of the largest set it has (:func:`choose_set`), and every score says which
set made it: the scores of different sets are different quantities, so the fusion keeps them apart
(:mod:`sarcoma_risk.fusion.table`).

No heavy import here: radiology, the score tables and the fusion all use these names.
"""

from __future__ import annotations

from enum import Enum
from typing import Iterable

from sarcoma_risk.errors import InvalidInput


class Sequence(str, Enum):
    T2FS = "t2fs"
    T1CE = "t1ce"


#: Sequences in channel order.
SEQUENCE_ORDER: tuple[str, ...] = tuple(s.value for s in Sequence)
#: Every sequence set, in order of preference when a case has the sequences of several.
SEQUENCE_SETS: tuple[str, ...] = ("t2fs+t1ce", "t2fs", "t1ce")
#: How people call each set (messages, the record's notes, the Slicer panel).
SET_LABELS = {"t2fs+t1ce": "T2FS + T1CE", "t2fs": "T2FS only", "t1ce": "T1CE only"}


def set_name(sequences: Iterable[str]) -> str:
    """The set's name, e.g. ``("t2fs", "t1ce")`` -> ``"t2fs+t1ce"``; :class:`InvalidInput` for unknown or
    repeated sequences, or sequences out of channel order."""
    items = tuple(sequences)
    unknown = [s for s in items if s not in SEQUENCE_ORDER]
    if unknown:
        raise InvalidInput(f"sequences: {', '.join(repr(s) for s in unknown)} is not valid; expected distinct items of "
                           f"{', '.join(SEQUENCE_ORDER)}")
    if not items or len(set(items)) != len(items):
        raise InvalidInput(f"sequences: {list(items)}; expected distinct items of {', '.join(SEQUENCE_ORDER)}")
    if list(items) != [s for s in SEQUENCE_ORDER if s in items]:
        raise InvalidInput(f"sequences: {list(items)}; list them in channel order ({', '.join(SEQUENCE_ORDER)})")
    return "+".join(items)


def set_sequences(name: str) -> tuple[str, ...]:
    """The sequences of a set name (``"t2fs+t1ce"`` -> ``("t2fs", "t1ce")``); the error lists the sets."""
    if name not in SEQUENCE_SETS:
        raise InvalidInput(f"sequence set {name!r}; expected one of {', '.join(SEQUENCE_SETS)}")
    return tuple(name.split("+"))


def choose_set(available: Iterable[str], offered: Iterable[str]) -> str | None:
    """The first set (in :data:`SEQUENCE_SETS` order) among ``offered`` whose sequences are all
    ``available``; None when no offered set fits."""
    have, offered = set(available), set(offered)
    for name in SEQUENCE_SETS:
        if name in offered and set(set_sequences(name)) <= have:
            return name
    return None

"""Which QuPath annotation classes mark the tumor region, matched the way QuPath names classes.

QuPath names a derived class by its parent's name, ``": "`` and its own name: "Tumor: Positive" is
derived from "Tumor" (``PathClass.toString()``; GeoJSON holds it as ``"names": ["Tumor", "Positive"]``,
read here as "Tumor: Positive"). QuPath tells classes apart by that full name, letter case included:
"Tumor" and "tumor" are two classes, and "Tumor_vital" is not derived from "Tumor".

A wanted class name (``--annotation-class``) matches an annotation whose class is that class *or is
derived from it*, as QuPath's ``PathClass.isDerivedFrom`` says: "Tumor" matches "Tumor" and
"Tumor: Positive" (intensity classification turns a Tumor annotation into "Tumor: Positive" and it
is still the tumor), but not "tumor", "Tumour", "Tumor_vital" or "Stroma: Tumor". A derived name
such as "Tumor: Positive" matches that class and the classes derived from it only. Names are
compared part by part with the spaces around ``:`` ignored, as QuPath's ``PathClass.fromString``
splits them. Several names match an annotation of any of them.

The default is :data:`DEFAULT_TUMOR_CLASSES` ("Tumor", QuPath's own tumor class).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from sarcoma_risk.errors import InvalidInput

#: The tumor class when none is given: QuPath's built-in "Tumor".
DEFAULT_TUMOR_CLASSES: tuple[str, ...] = ("Tumor",)
#: QuPath's separator between a class and the class derived from it.
PART_SEPARATOR = ":"


def class_parts(name: str) -> tuple[str, ...]:
    """The parts of a QuPath class name, parent first: "Tumor: Positive" -> ("Tumor", "Positive")."""
    return tuple(part.strip() for part in name.split(PART_SEPARATOR))


def check_class_names(names: Iterable[str] | None, option: str = "--annotation-class") -> tuple[str, ...]:
    """The wanted class names in QuPath's spelling, duplicates dropped; the default when none are given.

    Raises :class:`~sarcoma_risk.errors.InvalidInput` naming ``option`` for an empty name or an
    empty part ("Tumor:").
    """
    checked: list[str] = []
    for name in [names] if isinstance(names, str) else names or ():
        if not isinstance(name, str) or not all(class_parts(name)):
            raise InvalidInput(f"{option} {name!r}: not a QuPath class name; give the class as QuPath shows it, "
                               "e.g. Tumor, Tumour, Tumor_vital or 'Tumor: Positive'")
        spelled = (PART_SEPARATOR + " ").join(class_parts(name))
        if spelled not in checked:
            checked.append(spelled)
    return tuple(checked) or DEFAULT_TUMOR_CLASSES


def matches(name: str | None, wanted: Sequence[str]) -> bool:
    """Whether a QuPath class ``name`` is one of ``wanted`` or derived from one (None: unclassified)."""
    if name is None:
        return False
    parts = class_parts(name)
    return any(parts[:len(w)] == w for w in map(class_parts, wanted))


def describe(wanted: Sequence[str]) -> str:
    """The wanted classes for a message: 'Tumor', or 'Tumour' or 'Tumor_vital'."""
    return " or ".join(repr(name) for name in wanted)


def classes_found(names: Iterable[str | None]) -> str:
    """The distinct class names among ``names``, sorted, for an error message ("none" when unclassified)."""
    found = sorted({name for name in names if name is not None})
    return ", ".join(repr(name) for name in found) if found else "none"

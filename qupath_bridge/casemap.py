"""Which case each QuPath image belongs to: the image's ``case_id`` metadata, or a case-map CSV.

The bridge never guesses a case id (from a file name, say): an image is scored only when its case
is known. The case id comes from the image's project metadata key ``case_id`` (File > Project... >
Edit project metadata in QuPath), or from a CSV given with ``--case-map``::

    image,case_id
    slide-0001.svs,STS-0001
    slide-0002.svs,STS-0001

``image`` is the image name shown in QuPath's project list (or, in a column ``entry_id``, the
number QuPath gives the image: the folder name under ``data/``). When both sources name a case
and they differ, the image is reported as a conflict, not scored. Images without a case id are
listed as unmapped. Case ids must be pseudonyms (see
:func:`sarcoma_risk.records.schema.validate_case_id`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from sarcoma_risk.errors import InvalidCaseId, InvalidInput
from sarcoma_risk.records.schema import validate_case_id
from sarcoma_risk.tabular import read_csv_table

#: The image metadata key that holds the case id.
CASE_ID_KEY = "case_id"
_IMAGE_COLUMNS = ("image", "entry_id")


@dataclass(frozen=True)
class ImageRef:
    """What the bridge needs to know about a project image before scoring it."""

    entry_id: str
    name: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    def label(self) -> str:
        """How to name the image in messages: its QuPath name and entry id (when it has one)."""
        return repr(self.name) if self.entry_id == self.name else f"{self.name!r} (entry {self.entry_id})"


@dataclass(frozen=True)
class CaseMap:
    """Case ids by image name and by entry id, read from a CSV."""

    by_name: Mapping[str, str]
    by_entry: Mapping[str, str]
    source: str

    def unused(self, images: Iterable[ImageRef]) -> list[str]:
        """Rows that name no image of the project (typos, images removed from the project)."""
        images = list(images)
        names = {i.name for i in images}
        entries = {i.entry_id for i in images}
        return sorted([n for n in self.by_name if n not in names] + [f"entry {e}" for e in self.by_entry
                                                                     if e not in entries])


def read_case_map(path: str | Path) -> CaseMap:
    """Read a case-map CSV (columns ``case_id`` and ``image`` and/or ``entry_id``)."""

    table = read_csv_table(path, InvalidInput, what="case map")
    columns = [c for c in _IMAGE_COLUMNS if c in table.header]
    if "case_id" not in table.header or not columns:
        raise InvalidInput(f"{path}: a case map needs the columns 'case_id' and 'image' (the image name as QuPath "
                           f"shows it) or 'entry_id'; found {', '.join(table.header)}")
    maps: dict[str, dict[str, str]] = {"image": {}, "entry_id": {}}
    problems = []
    for row in table.rows:
        case_id = row.values["case_id"]
        keys = [(c, row.values[c]) for c in columns if row.values[c]]
        if not keys:
            problems.append(f"row {row.number}: no image name or entry id")
            continue
        try:
            validate_case_id(case_id)
        except InvalidCaseId as exc:
            problems.append(f"row {row.number}: {exc}")
            continue
        for column, key in keys:
            known = maps[column].get(key)
            if known is not None and known != case_id:
                problems.append(f"row {row.number}: {column} {key!r} is mapped to both {known} and {case_id}")
            maps[column][key] = case_id
    if problems:
        raise InvalidInput(f"{path}: case map has {len(problems)} problem(s): " + "; ".join(problems[:10])
                           + (" ..." if len(problems) > 10 else ""))
    return CaseMap(maps["image"], maps["entry_id"], str(path))


@dataclass
class CaseAssignment:
    """The outcome of :func:`assign_cases`: case ids of the images that have one, and the others."""

    cases: dict[str, str] = field(default_factory=dict)  # entry id -> case id
    unmapped: list[ImageRef] = field(default_factory=list)
    problems: list[tuple[ImageRef, str]] = field(default_factory=list)


def assign_cases(images: Iterable[ImageRef], case_map: CaseMap | None = None) -> CaseAssignment:
    """The case id of each image, from its ``case_id`` metadata or ``case_map``; never guessed.

    An image is a *problem* when its case id is not a valid pseudonym, when the metadata and the case
    map disagree, or when the case map matches it by a name that several project images share.
    """
    images = list(images)
    result = CaseAssignment()
    shared = {n for n, k in Counter(i.name for i in images).items() if k > 1}
    for image in images:
        from_metadata = (image.metadata.get(CASE_ID_KEY) or "").strip() or None
        from_map = None
        if case_map is not None:
            from_map = case_map.by_entry.get(image.entry_id)
            if from_map is None and image.name in case_map.by_name:
                if image.name in shared:
                    result.problems.append((image, f"several project images are named {image.name!r}; map them "
                                                   "by entry_id in the case map, or set case_id in their metadata"))
                    continue
                from_map = case_map.by_name[image.name]
        if from_metadata and from_map and from_metadata != from_map:
            result.problems.append((image, f"metadata case_id {from_metadata!r} differs from {from_map!r} in "
                                           f"{case_map.source}; correct one of them"))
            continue
        case_id = from_metadata or from_map
        if case_id is None:
            result.unmapped.append(image)
            continue
        try:
            result.cases[image.entry_id] = validate_case_id(case_id)
        except InvalidCaseId as exc:
            where = "metadata case_id" if from_metadata else case_map.source  # type: ignore[union-attr]
            result.problems.append((image, f"{where}: {exc}"))
    return result

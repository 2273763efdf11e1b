"""The bridge's settings for one QuPath project: ``<project>/sarcoma-risk/settings.json``.

One setting today: ``annotation_classes``, the QuPath class names of the tumor outlines in this
project. A project names its tumor class once ("Tumour", "Tumor_vital", "Region*"...), so it is set
once (``sarcoma-qupath settings PROJECT_DIR --annotation-class NAME``) and used by
``sarcoma-qupath score`` and by the QuPath script (through ``score-image --project``) whenever no
``--annotation-class`` is given. Without it the class is "Tumor". The file lives in the bridge's
own folder, which QuPath ignores; it is plain JSON, so it can be read, edited or versioned.

Nothing here needs QuPath or paquo.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from qupath_bridge.projectfiles import bridge_folder
from sarcoma_risk.errors import InvalidInput
from sarcoma_risk.fileio import atomic_write_json
from sarcoma_risk.pathology.classes import check_class_names

SETTINGS_FILE = "settings.json"


@dataclass(frozen=True)
class ProjectSettings:
    """A project's settings; ``annotation_classes`` None means the default ("Tumor")."""

    annotation_classes: tuple[str, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"annotation_classes": list(self.annotation_classes) if self.annotation_classes else None}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "ProjectSettings":
        if not isinstance(data, dict):
            raise InvalidInput(f"{where}: expected a JSON object such as {{\"annotation_classes\": [\"Tumour\"]}}")
        unknown = sorted(set(data) - {"annotation_classes"})
        if unknown:
            raise InvalidInput(f"{where}: unknown setting(s) {', '.join(map(repr, unknown))}; the known one is "
                               "'annotation_classes'")
        classes = data.get("annotation_classes")
        if classes is None:
            return cls()
        if not isinstance(classes, list) or not classes:
            raise InvalidInput(f"{where}: 'annotation_classes' must be a non-empty list of QuPath class names "
                               f"(got {classes!r})")
        return cls(check_class_names(classes, option=f"{where}: annotation_classes"))


def settings_path(project: str | Path) -> Path:
    """``<project folder>/sarcoma-risk/settings.json`` (the project is checked to exist)."""
    return bridge_folder(Path(project)) / SETTINGS_FILE


def read_settings(project: str | Path) -> ProjectSettings:
    """The project's settings (the defaults when it has none); :class:`InvalidInput` for a damaged file."""
    path = settings_path(project)
    if not path.is_file():
        return ProjectSettings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read the project's SarcomaRisk settings ({exc}); fix or delete the "
                           "file") from None
    return ProjectSettings.from_dict(data, str(path))


def write_settings(project: str | Path, settings: ProjectSettings) -> Path:
    """Save the project's settings (atomically); returns the file."""
    path = settings_path(project)
    path.parent.mkdir(exist_ok=True)
    return atomic_write_json(path, settings.to_dict())


def annotation_classes(given: Sequence[str] | None, project: str | Path | None) -> tuple[str, ...]:
    """The tumor classes to use: ``given`` (``--annotation-class``), else the project's, else "Tumor"."""
    if given:
        return check_class_names(given)
    saved = read_settings(project).annotation_classes if project is not None else None
    return check_class_names(saved)

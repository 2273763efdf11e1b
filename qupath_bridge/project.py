"""QuPath projects through paquo: the only module of SarcomaRisk that imports paquo.

Opened like a file::

    with QuPathProject("my_project", mode="r+") as project:
        for image in project.images():
            annotations = image.tumor_annotations()
            ...
            image.write_results(tiles, metadata)

paquo starts a Java virtual machine (QuPath's own) the first time ``paquo.projects`` is imported;
one per process, never restartable. So paquo is imported only inside :meth:`QuPathProject.open`,
after :func:`find_qupath` has checked, without starting Java, that QuPath is installed.

This module is kept thin on purpose: which tiles to write or remove, the metadata values, case ids,
backups and resuming are decided elsewhere (:mod:`.results`, :mod:`.casemap`, :mod:`.projectfiles`,
:mod:`.runstate`) and tested without QuPath. What is here: opening the project, listing images,
reading annotations, writing tiles in bulk under ``hierarchy.no_autoflush()``, writing metadata,
and making sure paquo really saved (it skips the save of an image whose file it cannot reach with
only a log line).

Unlike paquo's own context manager, leaving the ``with`` block never saves: each image is saved
by :meth:`ProjectImage.write_results` when its writing succeeded, so an error leaves the project as
it was before that image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from qupath_bridge.casemap import ImageRef
from qupath_bridge.projectfiles import check_image_reachable, project_file
from qupath_bridge.results import choose_tumor_annotations, is_sarcoma_risk_tile
from sarcoma_risk.errors import InvalidInput, MissingDependency, OutputError
from sarcoma_risk.pathology.classes import DEFAULT_TUMOR_CLASSES
from sarcoma_risk.pathology.geojson import QuPathObject, parse_geojson

MODES = ("r", "r+")
INSTALL_HELP = (
    "Install QuPath (0.4, 0.5 or 0.6) from https://qupath.github.io, then tell paquo where it is: set the "
    "environment variable PAQUO_QUPATH_DIR to the QuPath folder (for example /opt/QuPath, "
    "/Applications/QuPath-0.5.1.app or C:\\Program Files\\QuPath-0.5.1), or write qupath_dir = \"...\" in a "
    ".paquo.toml file in the current folder. Check with: paquo config --list")


def find_qupath() -> Path:
    """The QuPath installation paquo would use, found without starting Java.

    Raises :class:`~sarcoma_risk.errors.MissingDependency` saying how to install paquo or QuPath.
    """
    try:
        from paquo import settings
        from paquo._config import to_kwargs
        from paquo.jpype_backend import find_qupath as paquo_find_qupath
    except ImportError as exc:
        raise MissingDependency(f"paquo is not installed ({exc}); install the QuPath extra: "
                                f"pip install 'sarcoma-risk[qupath]'. {INSTALL_HELP}") from None
    try:
        info = paquo_find_qupath(**to_kwargs(settings))
    except (ValueError, FileNotFoundError, IsADirectoryError) as exc:
        where = to_kwargs(settings).get("qupath_dir") or "the usual install folders"
        raise MissingDependency(f"QuPath was not found in {where} ({exc}). {INSTALL_HELP}") from None
    return Path(info.app_dir)


def _java_exception_types() -> tuple[type[BaseException], ...]:
    import jpype

    return (jpype.JException,)


class QuPathProject:
    """A QuPath project opened through paquo.

    Parameters
    ----------
    path : path
        The project folder (or its ``project.qpproj``).
    mode : {"r", "r+"}
        ``"r"`` reads only; ``"r+"`` may write tiles and metadata (the project must exist).
    """

    def __init__(self, path: str | Path, mode: str = "r") -> None:
        if mode not in MODES:
            raise InvalidInput(f"mode: {mode!r} is not one of {', '.join(MODES)}")
        self.path = Path(path)
        self.mode = mode
        self._project: Any = None

    def open(self) -> "QuPathProject":
        """Check QuPath, start paquo (and Java) and load the project."""
        qpproj = project_file(self.path)
        find_qupath()
        from paquo.projects import QuPathProject as PaquoProject

        try:
            self._project = PaquoProject(qpproj, mode=self.mode)
        except (OSError, ValueError, RuntimeError, *_java_exception_types()) as exc:
            raise InvalidInput(f"{qpproj}: QuPath cannot open this project ({type(exc).__name__}: {exc}); was it "
                               "made by a newer QuPath than the one paquo uses?") from None
        return self

    def close(self) -> None:
        self._project = None  # nothing to flush: every write saved itself

    def __enter__(self) -> "QuPathProject":
        return self.open()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def paquo(self) -> Any:
        """The underlying ``paquo.projects.QuPathProject``."""
        if self._project is None:
            raise InvalidInput(f"{self.path}: the project is not open (use it in a 'with' block)")
        return self._project

    def qupath_version(self) -> str | None:
        from paquo.java import qupath_version

        return str(qupath_version) if qupath_version is not None else None

    def images(self) -> list["ProjectImage"]:
        """The project's images, in QuPath's order."""
        return [ProjectImage(entry, self) for entry in self.paquo.images]


@dataclass(frozen=True)
class WriteSummary:
    """What :meth:`ProjectImage.write_results` changed."""

    removed: int
    added: int


class ProjectImage:
    """One image entry of an open :class:`QuPathProject`."""

    def __init__(self, entry: Any, project: QuPathProject) -> None:
        self._entry = entry
        self._project = project
        self.ref = ImageRef(str(entry.entry_id), str(entry.image_name), dict(entry.metadata))

    def __repr__(self) -> str:
        return f"ProjectImage({self.ref.label()})"

    @property
    def uri(self) -> str:
        try:
            return str(self._entry.uri)
        except (RuntimeError, NotImplementedError) as exc:  # no server, or several files (paquo limit)
            raise InvalidInput(f"image {self.ref.label()}: its file cannot be determined ({exc})") from None

    def slide_path(self) -> Path:
        """The slide file; :class:`InvalidInput` when it moved (checked before anything is written)."""
        return check_image_reachable(self.uri, self.ref.label())

    def objects(self) -> list[QuPathObject]:
        """The image's annotations as QuPath writes them to GeoJSON, read into shapely geometries."""
        try:
            features = self._entry.hierarchy.to_geojson()
        except (OSError, RuntimeError, *_java_exception_types()) as exc:
            raise InvalidInput(f"image {self.ref.label()}: QuPath cannot read its objects ({exc})") from None
        return parse_geojson(features, f"image {self.ref.label()}")

    def tumor_annotations(self, classes: Sequence[str] = DEFAULT_TUMOR_CLASSES) -> list[QuPathObject]:
        """The annotations of ``classes`` (see :func:`qupath_bridge.results.choose_tumor_annotations`)."""
        return choose_tumor_annotations(self.objects(), classes, f"image {self.ref.label()}")

    def _data_file_state(self) -> tuple[int, int, int] | None:
        """Identity of data.qpdata (QuPath writes a new file on each save: inode, time, size change)."""
        try:
            stat = (Path(self._entry.entry_path) / "data.qpdata").stat()
        except FileNotFoundError:
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def write_results(self, tiles: Sequence[QuPathObject], metadata: Mapping[str, str]) -> WriteSummary:
        """Replace this image's SarcomaRisk tiles by ``tiles``, set ``metadata``, and save.

        Earlier SarcomaRisk tiles (see :func:`~qupath_bridge.results.is_sarcoma_risk_tile`) are
        removed; every other object stays. The image data is saved first and checked to have been
        written; only then are the metadata set and the project file saved, so a failure never
        leaves metadata that describe tiles that are not there.
        """
        from paquo.pathobjects import QuPathPathTileObject

        if self._project.mode != "r+":
            raise InvalidInput(f"{self._project.path}: opened read-only (mode 'r'); open it with mode 'r+' to write")
        self.slide_path()  # paquo would skip the save of an unreachable image with only a log line
        before = self._data_file_state()
        try:
            hierarchy = self._entry.hierarchy
            with hierarchy.no_autoflush():
                old = [t for t in hierarchy.tiles
                       if is_sarcoma_risk_tile("tile", t.name, list(t.measurements.keys()))]
                detections = hierarchy.detections  # tiles are detections; this proxy may remove and add them
                if old:
                    detections -= old
                new = []
                for tile in tiles:
                    obj = QuPathPathTileObject.from_shapely(tile.geometry, None, dict(tile.measurements))
                    obj.name = tile.name
                    obj.locked = tile.is_locked
                    new.append(obj)
                detections.update(new)
            self._entry.save()
        except (OSError, RuntimeError, *_java_exception_types()) as exc:
            # The changes lived only in memory: this image's data file is as it was.
            raise OutputError(f"image {self.ref.label()}: QuPath could not write its tiles ({exc}); its data "
                              "file was left as it was") from None
        after = self._data_file_state()
        if after is None or after == before:
            raise OutputError(f"image {self.ref.label()}: QuPath did not write its data.qpdata (is the slide "
                              "file reachable, and the project folder writable?); nothing was changed")
        for key, value in metadata.items():
            self._entry.metadata[str(key)] = str(value)
        self._project.paquo.save(images=False)
        self.ref = ImageRef(self.ref.entry_id, self.ref.name, dict(self._entry.metadata))
        return WriteSummary(removed=len(old), added=len(new))

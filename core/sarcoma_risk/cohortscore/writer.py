"""The cohort run's one door to the case store: what each case holds now, and each unit's write.

Only the client process opens the store, named as for every other command: a SQLite path, a
``postgresql://`` URL or a case-record server's ``https://`` URL (:func:`~sarcoma_risk.records.open_store`).
Workers send their scores back and this class writes them, one transaction per section, exactly
as ``score-mri`` and ``score-slide`` would. Why one writer: a SQLite store must stay on one
computer's local disk (its WAL needs shared memory, which a network share does not give), so
workers on other machines could not open it safely; a database or server store would need the
user's credentials (an API token, a PostgreSQL password) on every worker; and even on one machine,
several processes writing at once would queue on the store's write lock. The scores are a few
kilobytes, so sending them back costs nothing next to computing them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from sarcoma_risk.errors import CaseNotFound, PermissionDenied
from sarcoma_risk.pathology.record import merge_slide
from sarcoma_risk.records import open_store
from sarcoma_risk.records.accounts import may_write


class RecordWriter:
    """The case store opened for a run (``location``: a path or a store URL; None: the default store)."""

    def __init__(self, location: str | Path | None) -> None:
        self._store = open_store(location, mode="a")

    def check_may_write(self, sections: Iterable[str]) -> None:
        """Refuse now, before any work, the sections this store will not let the user write.

        A case-record server tells the role of the user's token; a database or file store has no
        roles. Without this check a radiologist's run would score every slide and then have each
        pathology write refused.
        """

        user = getattr(self._store, "user", None)
        if user is None:
            return
        refused = [s for s in sections if not may_write(user.role, s)]
        if refused:
            allowed = sorted(s for s in ("radiology", "pathology") if may_write(user.role, s))
            hint = (f"score only --modality {allowed[0]}" if allowed
                    else "use the token of a radiologist, a pathologist or an admin")
            raise PermissionDenied(f"{self.location}: the token of {user.name} (role {user.role.value}) may not write "
                                   f"the {' and '.join(refused)} section(s); {hint}; nothing was scored")

    @property
    def location(self) -> str:
        """Where the store is, for the run metadata: a path, or a URL without password or token."""
        return self._store.location

    def sections(self, case_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Case id -> {section name: content or None} for the cases that have a record."""
        out: dict[str, dict[str, Any]] = {}
        for case_id in case_ids:
            try:
                record = self._store.get(case_id)
            except CaseNotFound:
                continue
            out[case_id] = {"radiology": record.radiology, "pathology": record.pathology}
        return out

    def write_radiology(self, case_id: str, section: Mapping[str, Any]) -> int:
        """Replace the radiology section (as ``score-mri`` does); returns its new revision."""
        return self._store.put_section(case_id, "radiology", section)

    def write_pathology(self, case_id: str, slides: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
                        models: Any) -> tuple[int, float]:
        """Merge scored slides, given as (entry, section provenance), into the pathology section.

        One transaction for all of them; slides already there and not given stay, as with
        ``score-slide``. Returns the new revision and the pooled case score.
        """

        def merge(current: dict[str, Any] | None) -> dict[str, Any] | None:
            for entry, provenance in slides:
                current = merge_slide(current, entry, models, provenance)
            return current

        revision = self._store.update_section(case_id, "pathology", merge)
        return revision, float(self._store.get(case_id).pathology["score"])

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "RecordWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

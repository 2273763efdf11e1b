"""What the case record already holds, for the module's status box and the case-id completer.

The store is a SQLite file or the department's case-record server (a path or a store URL, see
:mod:`sarcoma_risk.records.location`). It is opened read-only (``mode="r"``), which never changes
it. The fused result is shown only when it is up to date: fusion reads the modality sections, so a
fusion section computed from other contents of them, or from a different set of modalities, is
reported as out of date (:func:`sarcoma_risk.records.summary.fusion_is_current`, the answer the
coordinators' web page gives too). On a server, the module computes the fused risk itself only when
the user's role may write it (a radiologist's may not: the coordinator fuses).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sarcoma_risk.records import StoreLocation, open_store, validate_case_id
from sarcoma_risk.records.accounts import may_write
from sarcoma_risk.records.location import StoreKind
from sarcoma_risk.records.remote import HttpStore
from sarcoma_risk.records.summary import MODALITIES, fusion_is_current
from sarcoma_risk.settings import default_store
#: What to do when a modality is missing, for the status box.
HOW_TO_ADD = {
    "clinical": "enter it with `sarcoma-risk clinical` (research coordinator)",
    "radiology": "press Compute in this module",
    "pathology": "score the H&E slide in QuPath (sarcoma-qupath)",
}


@dataclass(frozen=True)
class CaseStatus:
    """A summary of one case's record.

    ``present`` lists the modalities with data; ``fusion`` is the fusion section (None when absent)
    and ``fusion_current`` says whether it was computed from the current modality sections.
    ``fusion_allowed`` is False on a server whose user's role may not write the fusion section.
    """

    case_id: str
    in_store: bool
    present: tuple[str, ...] = ()
    radiology: dict[str, Any] | None = None
    fusion: dict[str, Any] | None = None
    fusion_current: bool = False
    revisions: dict[str, int] = field(default_factory=dict)
    fusion_allowed: bool = True

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m not in self.present)

    @property
    def ready_for_fusion(self) -> bool:
        """The module may compute and save the fused risk: all three modalities present (the full
        model of the published method can score the case) and the user may write the fusion section."""
        return not self.missing and self.fusion_allowed

    def lines(self) -> list[str]:
        """Plain-text lines for the module's status box."""
        if not self.in_store:
            return [f"Case {self.case_id} is not in the store yet; Compute creates it."]
        out = []
        for modality in MODALITIES:
            if modality in self.present:
                scored_by = (self.radiology or {}).get("model") if modality == "radiology" else None
                out.append(f"{modality.capitalize()}: present (revision {self.revisions.get(modality, 0)}"
                           + (f"; scored by the {scored_by} model)" if scored_by else ")"))
            else:
                out.append(f"{modality.capitalize()}: missing; {HOW_TO_ADD[modality]}")
        if self.fusion is None:
            out.append("Fused risk: not computed" + (f" (missing: {', '.join(self.missing)})" if self.missing else
                                                     "" if self.fusion_allowed else "; the coordinator computes it"))
        elif not self.fusion_current:
            out.append("Fused risk: out of date (a modality changed since it was computed); " +
                       ("recompute it" if self.fusion_allowed else "the coordinator recomputes it"))
        else:
            out.append(describe_fusion(self.fusion))
        return out


def describe_fusion(fusion: dict[str, Any]) -> str:
    """One line: risk group, log relative hazard, model and survival probabilities."""
    parts = [f"Fused risk: {str(fusion.get('group', '?')).upper()} risk group",
             f"log relative hazard {_number(fusion.get('risk'))}",
             f"model {fusion.get('model', '?')}"]
    survival = fusion.get("survival") or {}
    if survival:
        months = sorted(survival, key=lambda m: float(m))
        parts.append("recurrence-free survival " + ", ".join(
            f"{_months(m)} {100 * float(survival[m]):.0f}%" for m in months))
    return "; ".join(parts)


def _months(months: str) -> str:
    value = float(months)
    return f"{value / 12:g} y" if value % 12 == 0 else f"{value:g} mo"


def _number(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "?"


def _location(store_path: str | Path | None) -> StoreLocation | None:
    """The store named (None: the default store); None when it is a SQLite file not made yet."""
    where = StoreLocation.parse(store_path if store_path is not None else default_store())
    if where.kind is StoreKind.SQLITE and not Path(where.target).exists():
        return None
    return where


def read_case_status(store_path: str | Path | None, case_id: str) -> CaseStatus:
    """The status of ``case_id`` in the store at ``store_path`` (a path or store URL; None: the default store)."""
    case_id = validate_case_id(case_id)
    where = _location(store_path)
    if where is None:
        return CaseStatus(case_id, in_store=False)
    with open_store(where, mode="r") as store:
        allowed = not isinstance(store, HttpStore) or store.user is None or may_write(store.user.role, "fusion")
        if not store.exists(case_id):
            return CaseStatus(case_id, in_store=False, fusion_allowed=allowed)
        record = store.get(case_id)
    present = tuple(m for m in MODALITIES if record.section(m) is not None)
    return CaseStatus(case_id, in_store=True, present=present, radiology=record.radiology, fusion=record.fusion,
                      fusion_current=fusion_is_current(record), revisions=dict(record.revisions),
                      fusion_allowed=allowed)


def list_case_ids(store_path: str | Path | None) -> list[str]:
    """Case ids in the store (a path or store URL), for the completer; empty when there is no store yet."""
    where = _location(store_path)
    if where is None:
        return []
    with open_store(where, mode="r") as store:
        return store.case_ids()

"""The case record: one per patient, written by every tool, read by fusion and reports.

:func:`open_store` opens the store a path or store URL names (SQLite file, PostgreSQL database or
case-record server); every backend offers the :class:`CaseStore` interface.
"""

from sarcoma_risk.records.base import CaseStore
from sarcoma_risk.records.location import StoreLocation, open_store
from sarcoma_risk.records.schema import SCHEMA_VERSION, SECTIONS, CaseRecord, validate_case_id, validate_section

__all__ = ["SCHEMA_VERSION", "SECTIONS", "CaseRecord", "CaseStore", "StoreLocation", "open_store", "validate_case_id",
           "validate_section"]

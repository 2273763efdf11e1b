"""The case record: one per patient, written by every tool, read by fusion and reports."""

from sarcoma_risk.records.schema import SCHEMA_VERSION, SECTIONS, CaseRecord, validate_case_id, validate_section
from sarcoma_risk.records.store import CaseStore, open_store

__all__ = ["SCHEMA_VERSION", "SECTIONS", "CaseRecord", "CaseStore", "open_store", "validate_case_id", "validate_section"]

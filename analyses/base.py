"""Compatibility re-export: the analysis contract lives in :mod:`hublens.analysis`."""

from hublens.analysis import ROW_COLUMNS, Analysis, Query, Row, check_max_items

__all__ = ["ROW_COLUMNS", "Analysis", "Query", "Row", "check_max_items"]

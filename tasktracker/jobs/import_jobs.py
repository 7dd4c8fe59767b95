"""The CSV import job (issue: CSV import)."""

from __future__ import annotations

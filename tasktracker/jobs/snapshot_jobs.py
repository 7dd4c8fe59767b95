"""The daily snapshot job (issue: snapshot)."""

from __future__ import annotations

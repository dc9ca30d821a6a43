"""Extraction: episodes -> structured facts with provenance (rule-based by default, LLM when configured)."""

from __future__ import annotations

from .base import Extractor, Fact, is_single_valued, norm_value, render
from .naming import name_subjects, names_in
from .rules import RuleExtractor, extract_statements

__all__ = [
    "Extractor",
    "Fact",
    "RuleExtractor",
    "extract_statements",
    "is_single_valued",
    "name_subjects",
    "names_in",
    "norm_value",
    "render",
]

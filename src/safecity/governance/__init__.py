"""Accountability: authorisations, the audit chain, four-eyes review, retention, reports.

Each module owns one safeguard of DESIGN.md's invariants and works on the store
directly; the pipeline reaches them only through the sink and the gallery.
"""

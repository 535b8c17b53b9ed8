"""Connectors: one package per vendor; each pulls incrementally and emits normalized signals."""

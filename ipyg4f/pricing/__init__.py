"""Prices and context windows of models (issue 22: being built)."""

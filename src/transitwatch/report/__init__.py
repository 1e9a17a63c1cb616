"""Rendering results: text tables, CSV, JSON, HTML reports and plots."""

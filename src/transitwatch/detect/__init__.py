"""Detectors: outages, origin anomalies and upstream changes found in route changes."""

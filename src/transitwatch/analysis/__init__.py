"""Analyses over route changes: upstreams and shares, visibility, dependency, what-if."""

"""The web face of the store: HTML pages and a JSON API (``transitwatch serve``).

:func:`create_app` builds a FastAPI app for one store file; nothing is opened at import time.
"""

from __future__ import annotations

from transitwatch.web.app import create_app

__all__ = ["create_app"]

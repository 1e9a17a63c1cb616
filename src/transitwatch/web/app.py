"""The FastAPI app: JSON API, pages, local assets, and errors that are never a 500 for bad input."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from transitwatch import __version__
from transitwatch.web import api, pages
from transitwatch.web.access import StoreAccess, StoreUnavailable

DESCRIPTION = """Who carries a network's routes, in what share, since when: the targets, series and
events that `transitwatch watch`, `replay` and `upstreams --store` wrote into a store. Times are
ISO 8601 UTC. Errors are JSON: `{"detail": ...}` with a 4xx status (503 while a writer holds the
store)."""

# Everything is served from this origin: plotly.js from the plotly package, no CDN.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
STATIC_DIR = Path(__file__).parent / "static"


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the plotly package (the one plotly.offline embeds)."""
    path = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    if not path.is_file():
        raise RuntimeError(f"plotly.min.js not found at {path}: reinstall the plotly package")
    return path


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/openapi.json"


def _install_error_handlers(app: FastAPI, templates: Jinja2Templates) -> None:
    def page(
        request: Request, status: int, message: str, headers: Mapping[str, str] | None = None
    ) -> Response:
        return templates.TemplateResponse(
            request, "error.html", {"status": status, "message": message}, status_code=status, headers=headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _wants_json(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        return page(request, exc.status_code, str(exc.detail), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        if _wants_json(request):
            return await request_validation_exception_handler(request, exc)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:])}: {e.get('msg', '')}" for e in exc.errors()
        )
        return page(request, 422, problems or "bad request")

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> Response:
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.retry_after_s else None
        if _wants_json(request):
            return JSONResponse({"detail": exc.reason}, status_code=503, headers=headers)
        return page(request, 503, exc.reason, headers)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        # a fault of ours, not of the request: logged by uvicorn with its traceback, answered plainly
        if _wants_json(request):
            return JSONResponse({"detail": "internal error"}, status_code=500)
        return page(request, 500, "internal error")


def create_app(store_path: str | os.PathLike[str]) -> FastAPI:
    """The web app for the store at ``store_path``, opened read-only while requests need it."""
    access = StoreAccess(store_path)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        access.close()

    app = FastAPI(
        lifespan=lifespan,
        title="transitwatch",
        version=__version__,
        description=DESCRIPTION,
        docs_url=None,  # Swagger UI and ReDoc load their assets from CDNs; /openapi.json is enough
        redoc_url=None,
    )
    app.state.store_access = access
    templates = pages.make_templates()
    plotly_js = plotly_js_path()

    app.include_router(api.router)
    app.include_router(pages.make_router(templates))

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_asset() -> FileResponse:
        return FileResponse(
            plotly_js, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"}
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    _install_error_handlers(app, templates)
    return app

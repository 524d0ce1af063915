"""The app factory: `create_app(settings)` builds a FastAPI app with its own store, pool and
scheduler; the lifespan starts and stops them."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from hub3d import __version__
from hub3d.activity import install_activity
from hub3d.api.auth import require_api_key
from hub3d.api.errors import install_error_handlers
from hub3d.api.inputs import preload_imaging
from hub3d.api.openapi import install_openapi
from hub3d.api.routes import generate, jobs, metrics, status
from hub3d.api.routes.page import install_page
from hub3d.config import Settings
from hub3d.gpu import GPU, free_vram_gb, query_gpus
from hub3d.jobs.scheduler import Scheduler
from hub3d.jobs.store import JobStore
from hub3d.models.catalog import Catalog
from hub3d.workers.pool import make_pool

__all__ = ["create_app"]

_WARM_AFTER_S = 0.5


def create_app(
    settings: Settings,
    *,
    vram_probe: Callable[[str], float | None] = free_vram_gb,
    gpu_lister: Callable[[], list[GPU]] = query_gpus,
) -> FastAPI:
    catalog = Catalog.build(settings.models, settings.data_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = JobStore(settings.data_dir)
        pool = make_pool(settings, catalog=catalog, vram_probe=vram_probe,
                         gpu_lister=gpu_lister)
        scheduler = Scheduler(settings=settings, store=store, pool=pool)
        app.state.metrics = metrics.Metrics()
        scheduler.on_finished.append(app.state.metrics.job_finished)
        app.state.store, app.state.pool, app.state.scheduler = store, pool, scheduler
        await scheduler.start()
        # Warm the upload path a moment after startup, not during it: importing it competes
        # with the first /health for the GIL.
        warm = threading.Timer(_WARM_AFTER_S, preload_imaging)
        warm.daemon = True
        warm.start()
        try:
            yield
        finally:
            warm.cancel()
            await scheduler.stop()
            store.close()

    app = FastAPI(
        title="hub3d", version=__version__, lifespan=lifespan,
        description="Image-to-3D serving (SF3D, SAM-3D-Objects, inflate) from a JupyterHub GPU.",
    )
    app.state.settings, app.state.catalog = settings, catalog
    install_error_handlers(app)
    app.include_router(status.open_router)
    guarded = [Depends(require_api_key)]
    for router in (generate.router, jobs.router, jobs.list_router, status.router,
                   metrics.router):
        app.include_router(router, dependencies=guarded)
    install_openapi(app)
    install_page(app, settings)
    install_activity(app, settings)  # tells the hub it is in use only while it works
    return app

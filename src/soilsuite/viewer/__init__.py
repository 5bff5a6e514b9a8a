"""A local web map of a product folder: ``soilsuite serve OUT_DIR``.

Every product file of the folder (window, per-year and temporal products, soil maps, and any
product registered later) is a layer with a stretch and a legend; tiles are rendered on the
fly from the COGs by rio-tiler (no pre-rendered tiles); a click shows every layer's value and,
when the run's archive is reachable, the pixel's PV+IR2 time series with its bare and rejected
observations. The page's JavaScript and CSS (Leaflet) ship inside the package: it works offline,
without a basemap unless the user switches the OpenStreetMap one on.

Python::

    from soilsuite.viewer import create_app, serve
    app = create_app("demo_out")        # an ASGI app (Starlette)
    serve("demo_out", port=8765)        # blocks; Ctrl-C stops it
"""

from __future__ import annotations

import ipaddress
import os

from .app import create_app
from .layers import Layer, discover_layers

__all__ = ["Layer", "create_app", "discover_layers", "serve"]

#: Hosts the viewer binds to: loopback only (it serves the folder's files to whoever connects).
LOOPBACK_NAMES = ("localhost",)


def check_host(host: str) -> str:
    """The host if it is a loopback address (127.0.0.0/8, ::1, localhost), else ConfigError."""
    from ..errors import ConfigError

    if host in LOOPBACK_NAMES:
        return host
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise ConfigError(f"--host {host}: the viewer binds to a loopback address only (127.0.0.1, ::1 or localhost)")


def serve(out_dir: str | os.PathLike, *, port: int = 8765, host: str = "127.0.0.1", log_level: str = "warning",
          ready=None) -> None:
    """Serve the viewer of ``out_dir`` at ``http://host:port/`` until interrupted.

    Parameters
    ----------
    out_dir : str or os.PathLike
        The product folder.
    port : int
        TCP port (0 picks a free one).
    host : str
        A loopback address; the viewer never listens on other interfaces.
    log_level : str
        uvicorn's log level (``"info"`` logs every request).
    ready : callable, optional
        Called with the URL once the server listens (e.g. to open a browser).
    """
    import uvicorn

    app = create_app(out_dir)
    config = uvicorn.Config(app, host=check_host(host), port=port, log_level=log_level, lifespan="off")
    server = uvicorn.Server(config)
    if ready is not None:
        import threading
        import time

        def notify() -> None:
            while not server.started and not server.should_exit:
                time.sleep(0.05)
            if server.started:
                sock = server.servers[0].sockets[0].getsockname()
                h = f"[{sock[0]}]" if ":" in sock[0] else sock[0]
                ready(f"http://{h}:{sock[1]}/")

        threading.Thread(target=notify, daemon=True).start()
    server.run()

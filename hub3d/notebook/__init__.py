"""hub3d inside a notebook kernel: the server handle, ways in from the laptop, the panel."""

from hub3d.notebook.ports import PortInUse
from hub3d.notebook.sample import run_sample, sample_image
from hub3d.notebook.server import ServerHandle, block, running_servers, start_server, stop_all
from hub3d.notebook.urls import format_ways_in, resolve_api_key, ways_in

__all__ = [
    "PortInUse", "ServerHandle", "block", "format_ways_in", "resolve_api_key", "run_sample",
    "running_servers", "sample_image", "start_server", "stop_all", "ways_in",
]

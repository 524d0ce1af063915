"""A kernel in the user's Jupyter server, driven as JupyterLab drives it: the server's REST API
starts it, its websocket carries execute requests, iopub carries the outputs. `run_notebook`
is Run All with papermill-style parameters injected after the tagged cell."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat
import requests
import websocket

from tests.hub.hub_process import HubUser

__all__ = ["CellError", "Executed", "Kernel"]


class CellError(AssertionError):
    """A cell raised; the message has its output so far and the traceback."""


@dataclass
class Executed:
    code: str
    text: str = ""  # stream + text/plain outputs, in order
    error: str | None = None
    seconds: float = 0.0
    html: list[str] = field(default_factory=list)


class Kernel:
    def __init__(self, user: HubUser, name: str = "python3") -> None:
        self.user = user
        r = self._rest("POST", "api/kernels", json={"name": name})
        self.id = str(r.json()["id"])
        self._connect()

    @classmethod
    def attach(cls, user: HubUser, kernel_id: str) -> Kernel:
        """A kernel someone else started (JupyterLab, say), on a websocket of our own."""
        self = cls.__new__(cls)
        self.user, self.id = user, kernel_id
        self._connect()
        return self

    def _rest(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        r = requests.request(method, f"{self.user.server_url}{path}",
                             headers=self.user.headers(), timeout=60, **kwargs)
        r.raise_for_status()
        return r

    def _connect(self) -> None:
        self.session = uuid.uuid4().hex
        url = (self.user.server_url.replace("http://", "ws://")
               + f"api/kernels/{self.id}/channels?session_id={self.session}")
        end = time.monotonic() + 60
        while True:
            try:
                self.ws = websocket.create_connection(
                    url, header=[f"Authorization: token {self.user.token}"], timeout=5)
                self._used = time.monotonic()
                return
            except (OSError, websocket.WebSocketException):
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)

    def model(self) -> dict[str, Any]:
        return dict(self._rest("GET", f"api/kernels/{self.id}").json())

    def execute(self, code: str, timeout: float = 300.0, check: bool = True) -> Executed:
        if time.monotonic() - self._used > 10:
            # the server closes a websocket that left its pings unanswered (nobody read it)
            self.ws.close()
            self._connect()
        msg_id = uuid.uuid4().hex
        self.ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "tests",
                       "session": self.session, "version": "5.3",
                       "date": datetime.now(timezone.utc).isoformat()},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}}))
        out, t0 = Executed(code), time.monotonic()
        idle = replied = False
        while not (idle and replied):
            left = t0 + timeout - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"cell still running after {timeout} s:\n{code}\n{out.text}")
            self.ws.settimeout(min(left, 5.0))
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.text += content["text"]
            elif kind in ("execute_result", "display_data"):
                data = content.get("data", {})
                out.text += data.get("text/plain", "") + "\n"
                if "text/html" in data:
                    out.html.append(data["text/html"])
            elif kind == "error":
                out.error = f"{content['ename']}: {content['evalue']}"
                out.text += "\n".join(content.get("traceback", []))
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
            elif kind == "execute_reply":
                replied = True
        out.seconds = time.monotonic() - t0
        self._used = time.monotonic()
        if check and out.error:
            raise CellError(f"{out.error}\n--- cell:\n{code}\n--- output:\n{out.text}")
        return out

    def run_notebook(self, path: Path, params: dict[str, Any], timeout: float = 300.0,
                     check: bool = True) -> list[Executed]:
        """Every code cell in order (Run All); `params` as a cell after the parameters cell.
        Stops at the first error, as Run All does."""
        nb = nbformat.read(path, as_version=4)
        done: list[Executed] = []
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            done.append(self.execute(cell.source, timeout, check))
            if done[-1].error:
                return done
            if "parameters" in cell.metadata.get("tags", []):
                injected = "\n".join(f"{k} = {v!r}" for k, v in params.items())
                done.append(self.execute(injected, timeout, check))
        return done

    def restart(self) -> None:
        """Kernel > Restart: the same kernel id, a new process (everything in it ends)."""
        self._rest("POST", f"api/kernels/{self.id}/restart")
        self.ws.close()
        self._connect()

    def shutdown(self) -> None:
        try:
            self.ws.close()
            self._rest("DELETE", f"api/kernels/{self.id}")
        except (requests.RequestException, OSError, websocket.WebSocketException):
            pass  # the server is already gone

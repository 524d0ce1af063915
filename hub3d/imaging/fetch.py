"""Fetch `image_url` safely: http(s) only, no private/loopback/link-local targets (SSRF), every
redirect hop re-checked and connected to the very address that was checked, capped in size and
time."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from hub3d.errors import ImageTooLarge, InvalidInput

__all__ = ["address_problem", "check_url", "fetch_image_url"]

MAX_REDIRECTS = 5
_CHUNK = 65536
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_problem(ip: IPAddress, allow_private: bool) -> str | None:
    """Why a server may not fetch from `ip`, or None. Link-local (cloud metadata) is never ok."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip.is_link_local:
        return "a link-local address (e.g. a cloud metadata service)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address (0.0.0.0 or ::)"
    if allow_private:
        return None
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_reserved:  # before is_private, which also covers 240.0.0.0/4
        return "a reserved address"
    if ip.is_private:
        return "a private-network address"
    if not ip.is_global:
        return "a non-public address"
    return None


def check_url(url: str, allow_private: bool) -> IPAddress:
    """Refuse a URL by scheme or by ANY address its host resolves to; return one checked address."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"image_url must be http or https, not '{parts.scheme or url[:20]}'")
    host = parts.hostname
    if not host:
        raise InvalidInput(f"image_url has no host: {url[:200]}")
    try:
        port = parts.port
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except ValueError as exc:  # a port out of range or not a number
        raise InvalidInput(f"image_url is malformed ({exc})") from None
    except (OSError, UnicodeError) as exc:
        raise InvalidInput(f"image_url host '{host}' does not resolve ({exc})") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for ip in addresses:
        problem = address_problem(ip, allow_private)
        if problem:
            raise InvalidInput(f"image_url host '{host}' resolves to {ip}, {problem}; the server"
                               " does not fetch from there — send the image itself instead")
    return addresses[0]


class _PinnedAdapter(HTTPAdapter):
    """Connects to the address check_url approved (no second DNS answer: no rebinding), while
    TLS still verifies the certificate against the URL's host name. Needs requests >= 2.32;
    on older versions the connection resolves the host again (the time cap bounds the risk)."""

    def __init__(self, ip: IPAddress) -> None:
        super().__init__(max_retries=0)
        self.ip = ip

    def build_connection_pool_key_attributes(self, request: Any, verify: Any,
                                             cert: Any = None) -> tuple[dict, dict]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert)
        hostname = host_params["host"]
        host_params["host"] = str(self.ip)
        if host_params["scheme"] == "https":
            pool_kwargs.update(server_hostname=hostname, assert_hostname=hostname)
        return host_params, pool_kwargs


def _get(url: str, ip: IPAddress, timeout: float) -> requests.Response:
    parts = urlsplit(url)
    with requests.Session() as session:
        session.trust_env = False  # no proxy from the environment: it would resolve names itself
        session.mount(f"{parts.scheme}://", _PinnedAdapter(ip))
        # The Host header names the URL's host: the connection goes to the pinned address.
        return session.get(url, stream=True, allow_redirects=False, timeout=timeout,
                           headers={"User-Agent": "hub3d", "Host": parts.netloc.rpartition("@")[2]})


def fetch_image_url(url: str, *, max_bytes: int, timeout_s: float, allow_private: bool) -> bytes:
    """The body at `url`; raises InvalidInput (refused, unreachable, slow) or ImageTooLarge."""
    deadline = time.monotonic() + timeout_s
    for _ in range(MAX_REDIRECTS + 1):
        ip = check_url(url, allow_private)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            resp = _get(url, ip, left)
        except requests.Timeout:
            raise InvalidInput(f"image_url took longer than {timeout_s:g} s") from None
        except requests.RequestException as exc:
            raise InvalidInput(f"could not fetch image_url: {exc}") from None
        with resp:
            if resp.is_redirect:
                url = urljoin(url, resp.headers.get("location", ""))
                continue
            if not 200 <= resp.status_code < 300:
                raise InvalidInput(f"image_url answered HTTP {resp.status_code} {resp.reason}")
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise ImageTooLarge(f"image_url body is {int(declared) / 1e6:.1f} MB; the"
                                    f" limit is {max_bytes / 1e6:g} MB")
            return _read_capped(resp, max_bytes, deadline, timeout_s)
    else:
        raise InvalidInput(f"image_url redirected more than {MAX_REDIRECTS} times")
    raise InvalidInput(f"image_url took longer than {timeout_s:g} s")


def _cut_at_deadline(resp: requests.Response, seconds: float) -> threading.Timer:
    """Shut the socket down when time is up: a server trickling bytes cannot hold a read."""
    conn = getattr(resp.raw, "connection", None) or getattr(resp.raw, "_connection", None)
    sock = getattr(conn, "sock", None)

    def cut() -> None:
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    timer = threading.Timer(max(seconds, 0.0), cut)
    timer.daemon = True
    timer.start()
    return timer


def _read_capped(resp: requests.Response, max_bytes: int, deadline: float,
                 timeout_s: float) -> bytes:
    chunks, size = [], 0
    too_slow = InvalidInput(f"image_url took longer than {timeout_s:g} s")
    timer = _cut_at_deadline(resp, deadline - time.monotonic())
    try:
        # read1 returns whatever has arrived, so a trickled body meets the deadline check
        # after every few bytes instead of only when a 64 kB chunk fills up.
        while chunk := resp.raw.read1(_CHUNK, decode_content=True):
            size += len(chunk)
            if size > max_bytes:
                raise ImageTooLarge(f"image_url body is over the {max_bytes / 1e6:g} MB limit")
            if time.monotonic() >= deadline:
                raise too_slow
            chunks.append(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        if time.monotonic() >= deadline:
            raise too_slow from None
        raise InvalidInput(f"could not read image_url: {exc}") from None
    finally:
        timer.cancel()
    if time.monotonic() >= deadline:
        raise too_slow
    return b"".join(chunks)

"""Fetch `image_url` safely: http(s) only, no private/loopback/link-local targets (SSRF), every
redirect hop re-checked, capped in size and time."""

from __future__ import annotations

import ipaddress
import socket
import time
from urllib.parse import urljoin, urlsplit

import requests

from hub3d.errors import ImageTooLarge, InvalidInput

__all__ = ["address_problem", "check_url", "fetch_image_url"]

MAX_REDIRECTS = 5
_CHUNK = 65536


def address_problem(ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
                    allow_private: bool) -> str | None:
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
    if ip.is_private:
        return "a private-network address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved or non-public address"
    return None


def check_url(url: str, allow_private: bool) -> None:
    """Refuse a URL by scheme or by any address its host resolves to."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"image_url must be http or https, not '{parts.scheme or url[:20]}'")
    host = parts.hostname
    if not host:
        raise InvalidInput(f"image_url has no host: {url[:200]}")
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInput(f"image_url host '{host}' does not resolve ({exc})") from None
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        problem = address_problem(ip, allow_private)
        if problem:
            raise InvalidInput(f"image_url host '{host}' resolves to {ip}, {problem}; the server"
                               " does not fetch from there — send the image itself instead")


def fetch_image_url(url: str, *, max_bytes: int, timeout_s: float, allow_private: bool) -> bytes:
    # The host is resolved again when connecting; a DNS answer that changes between the check
    # and the connect (rebinding) is not covered. The time cap bounds what such a race can do.
    deadline = time.monotonic() + timeout_s
    with requests.Session() as session:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, allow_private)
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                resp = session.get(url, stream=True, allow_redirects=False, timeout=left,
                                   headers={"User-Agent": "hub3d"})
            except requests.RequestException as exc:
                raise InvalidInput(f"could not fetch image_url: {exc}") from None
            with resp:
                if resp.is_redirect:
                    url = urljoin(url, resp.headers.get("location", ""))
                    continue
                if resp.status_code >= 400:
                    raise InvalidInput(f"image_url answered HTTP {resp.status_code}")
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise ImageTooLarge(f"image_url body is {int(declared) / 1e6:.1f} MB; the"
                                        f" limit is {max_bytes / 1e6:.0f} MB")
                return _read_capped(resp, max_bytes, deadline, timeout_s)
        else:
            raise InvalidInput(f"image_url redirected more than {MAX_REDIRECTS} times")
    raise InvalidInput(f"image_url took longer than {timeout_s:g} s")


def _read_capped(resp: requests.Response, max_bytes: int, deadline: float,
                 timeout_s: float) -> bytes:
    chunks, size = [], 0
    try:
        for chunk in resp.iter_content(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise ImageTooLarge(f"image_url body is over the {max_bytes / 1e6:.0f} MB limit")
            if time.monotonic() > deadline:
                raise InvalidInput(f"image_url took longer than {timeout_s:g} s")
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise InvalidInput(f"could not read image_url: {exc}") from None
    return b"".join(chunks)

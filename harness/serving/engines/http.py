"""A small HTTP/1.1 client on asyncio streams: JSON GETs and a streamed POST read as server-sent events.

The standard library has no async HTTP client, and a serving benchmark must see each streamed chunk the
moment it arrives (TTFT, ITL), so this reads the socket itself: Content-Length, chunked or until close.
Plain http only (engines under test listen on a local or cluster address).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlparse


class HttpError(RuntimeError):
    """A non-2xx answer: the status and the start of the body."""


async def _connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    u = urlparse(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port or 80, limit=2**22)
    return reader, writer, (u.path or "/") + (f"?{u.query}" if u.query else "")


async def _head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection before answering")
    status = int(status_line.split()[1])
    headers = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def _body(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    """The body's bytes as they arrive."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                return
            yield await reader.readexactly(size)
            await reader.readexactly(2)  # the CRLF after each chunk
    elif "content-length" in headers:
        yield await reader.readexactly(int(headers["content-length"]))
    else:
        while chunk := await reader.read(65536):
            yield chunk


def _request(method: str, path: str, host: str, body: bytes | None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close", "Accept: */*"]
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


async def get_json(url: str, timeout_s: float) -> tuple[Any, dict[str, str]]:
    """GET a JSON document; (parsed body, response headers). Raises HttpError on a non-2xx status."""

    async def go() -> tuple[Any, dict[str, str]]:
        reader, writer, path = await _connect(url)
        try:
            writer.write(_request("GET", path, urlparse(url).netloc, None))
            await writer.drain()
            status, headers = await _head(reader)
            data = b"".join([c async for c in _body(reader, headers)])
        finally:
            writer.close()
        if not 200 <= status < 300:
            raise HttpError(f"GET {url}: HTTP {status}: {data[:200].decode(errors='replace')}")
        return (json.loads(data) if data.strip() else None), headers

    return await asyncio.wait_for(go(), timeout_s)


async def post_sse(url: str, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """POST JSON and yield each server-sent event's `data:` object as it arrives, until `[DONE]` or the end."""
    reader, writer, path = await _connect(url)
    try:
        writer.write(_request("POST", path, urlparse(url).netloc, json.dumps(payload).encode()))
        await writer.drain()
        status, headers = await _head(reader)
        if not 200 <= status < 300:
            data = b"".join([c async for c in _body(reader, headers)])
            raise HttpError(f"POST {url}: HTTP {status}: {data[:300].decode(errors='replace')}")
        buffer = b""
        async for chunk in _body(reader, headers):
            buffer = (buffer + chunk).replace(b"\r\n", b"\n")  # events end with a blank line
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                for line in event.splitlines():
                    if line.startswith(b"data:"):
                        text = line[5:].strip()
                        if text == b"[DONE]":
                            return
                        yield json.loads(text)
    finally:
        writer.close()

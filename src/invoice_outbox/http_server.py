"""uvicorn's httptools protocol with a bound on request headers (the `serve` command uses it).

httptools buffers a request's headers without limit: a client could send megabytes of one
header and have them held in memory and parsed on the event loop.  `BoundedHttpToolsProtocol`
counts the bytes of a request until its headers are complete and, past `MAX_HEADER_BYTES`,
answers ``431 Request Header Fields Too Large`` and closes the connection -- before the rest
is read, so at most the limit and one read (256 KiB) are ever buffered.  Requests within the
limit are served exactly as by uvicorn's own protocol.  The application checks each header
line and the total again (`invoice_outbox.api.boundary.HeaderSizeLimit`), for other servers.
"""

from __future__ import annotations

from typing import Final

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from invoice_outbox.api.boundary import MAX_HEADER_BYTES

_MESSAGE: Final = f"Request headers are larger than the limit of {MAX_HEADER_BYTES} bytes.\n"


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol refusing requests whose headers pass `MAX_HEADER_BYTES` (431)."""

    _header_bytes = 0
    _reading_headers = True

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._header_bytes = 0
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        if self._reading_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Only bytes read while the headers are still incomplete count: a small request whose
        # body arrives in the same read is not refused.
        if (
            self._reading_headers
            and self._header_bytes > MAX_HEADER_BYTES
            and not self.transport.is_closing()
        ):
            self._refuse()

    def _refuse(self) -> None:
        body = _MESSAGE.encode("ascii")
        head = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n\r\n",
            ]
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()

"""A TCP proxy for tests that cut a service off, or count its round trips."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    """Forwards a local port to the database; `cut()` drops every connection and refuses new
    ones until `restore()`. `sent` counts the reads of what clients send (a client that waits
    for each answer, as a database driver does, sends one per round trip)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.up = True
        self.sent = 0
        self.pipes: set[asyncio.StreamWriter] = set()
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self.pipes |= {writer, up_writer}

        async def pump(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, upstream: bool
        ) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    self.sent += upstream
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(
            pump(reader, up_writer, upstream=True), pump(up_reader, writer, upstream=False)
        )

    def cut(self) -> None:
        self.up = False
        for w in self.pipes:
            w.close()
        self.pipes.clear()

    def restore(self) -> None:
        self.up = True

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()

"""The library versions whose private parts this package replaces, and the start-up check that
the installed ones are those (docs/ARCHITECTURE.md, "Library internals", lists each patch)."""

from __future__ import annotations

from importlib import metadata

# Distribution name -> the version the patches in sockets/ were written and tested against.
PATCHED = {
    "tornado": "6.6.1",  # transport.py: write_frames (ws_connection.stream), _headers
    "python-engineio": "4.15.1",  # engine.py, transport.py, __init__.py (EngineServer)
    "python-socketio": "5.18.1",  # __init__.py (SocketServer), managers.py
}


class UntestedLibrary(RuntimeError):
    """An installed library differs from the version the patches were written for."""


def untested_libraries() -> list[str]:
    """One line for each installed library that differs from `PATCHED`."""
    lines = []
    for name, wanted in PATCHED.items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "none"
        if installed != wanted:
            lines.append(
                f"{name} {installed} is installed, but sockets/ replaces private parts of "
                f"{name} {wanted} (docs/ARCHITECTURE.md, 'Library internals')"
            )
    return lines


def check_libraries(*, allow_untested: bool) -> list[str]:
    """Raise `UntestedLibrary` naming the first library that differs, unless `allow_untested`;
    the lines that differ (to log as warnings when allowed)."""
    lines = untested_libraries()
    if lines and not allow_untested:
        raise UntestedLibrary(lines[0] + "; set ALLOW_UNTESTED_LIBRARIES=1 to start anyway")
    return lines

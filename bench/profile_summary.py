"""Own ("self") time of a py-spy flame graph (SVG), grouped by package.

    python bench/profile_summary.py bench/profile-mariadb.svg [more.svg ...]

A frame's own samples are its samples minus those of the frames right above it. Samples
whose own frame is a wait (the selector's `select`, a thread's lock or queue wait) are left
out: the shares are of the busy samples.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

FRAME = re.compile(
    r'<title>(?P<title>[^<]*)</title><rect x="[^"]*" y="(?P<y>[\d.]+)"[^>]*'
    r'fg:x="(?P<x>\d+)" fg:w="(?P<w>\d+)"'
)
WAITS = (
    "Selector.select (selectors.py",
    ".wait (threading.py",
    ".get (queue.py",
    "_wait_for_tstate_lock",
)
GROUPS = [
    ("SQLAlchemy (+ greenlet bridge)", ("sqlalchemy/", "greenlet")),
    (
        "database driver (aiomysql/PyMySQL, aiosqlite/sqlite3)",
        ("aiomysql/", "pymysql/", "aiosqlite/", "sqlite3"),
    ),
    ("python-socketio / python-engineio", ("socketio/", "engineio/")),
    ("Tornado", ("tornado/",)),
    (
        "application (sockets/, services/, models/, handlers/)",
        ("sockets/", "services/", "models/", "handlers/", "server.py"),
    ),
    (
        "asyncio event loop, selectors, socket I/O",
        ("asyncio/", "selectors.py", "socket.py", "ssl.py"),
    ),
]


def own_samples(svg: str) -> Counter[str]:
    frames = [(m["title"], float(m["y"]), int(m["x"]), int(m["w"])) for m in FRAME.finditer(svg)]
    children: dict[float, list[tuple[int, int]]] = {}
    for _title, y, x, w in frames:
        children.setdefault(y, []).append((x, w))
    own: Counter[str] = Counter()
    for title, y, x, w in frames:
        # py-spy draws the root at the top: a frame's callees are one row (16 px) lower.
        inner = sum(cw for cx, cw in children.get(y + 16, []) if x <= cx < x + w)
        if w - inner > 0:
            own[title] += w - inner
    return own


def group_of(title: str) -> str:
    where = title[title.find("(") + 1 :]
    for name, keys in GROUPS:
        if any(k in where or k in title for k in keys):
            return name
    return "other (stdlib json/datetime/logging, prometheus_client, jwt, ...)"


def main() -> None:
    for path in sys.argv[1:]:
        own = own_samples(Path(path).read_text())
        busy: Counter[str] = Counter()
        for title, n in own.items():
            if not any(w in title for w in WAITS):
                busy[group_of(title)] += n
        total = sum(busy.values())
        print(f"\n{path}: {total} busy samples ({sum(own.values()) - total} waiting left out)")
        for name, n in busy.most_common():
            print(f"  {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()

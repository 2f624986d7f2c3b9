"""The start-up check of the library versions that sockets/ patches."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sockets import libraries

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_installed_libraries_are_the_patched_ones() -> None:
    assert libraries.untested_libraries() == []
    assert libraries.check_libraries(allow_untested=False) == []


def test_another_version_is_refused_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(libraries.PATCHED, "python-engineio", "4.0.0")
    with pytest.raises(libraries.UntestedLibrary, match=r"^python-engineio 4\.15\.1 is installed"):
        libraries.check_libraries(allow_untested=False)
    lines = libraries.check_libraries(allow_untested=True)
    assert len(lines) == 1 and "4.0.0" in lines[0]


def test_the_server_refuses_to_start_on_another_version(tmp_path: Path) -> None:
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from sockets import libraries; libraries.PATCHED['tornado'] = '1.0';"
        "import server; sys.exit(server.main(['--port', '1']))"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", script, str(ROOT)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("supportchat: tornado 6.6.1 is installed"), run.stderr
    assert "ALLOW_UNTESTED_LIBRARIES=1" in last
    assert list(tmp_path.iterdir()) == []  # refused before anything was made

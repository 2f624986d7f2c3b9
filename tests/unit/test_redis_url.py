"""`redis+sentinel://` URLs as python-socketio's Redis manager reads them."""

from __future__ import annotations

import pytest
from socketio.redis_manager import parse_redis_sentinel_url

from services.redis import sentinel_parts

URLS = [
    "redis+sentinel://s1:26379,s2:26380/0/mymaster",
    "redis+sentinel://:secret@s1:26379/2/cache",
    "redis+sentinel://user:p%40ss@s1:26379,s2:26379/1",
    "redis+sentinel://s1:26379",
]


@pytest.mark.parametrize("url", URLS)
def test_sentinel_urls_read_as_python_socketio_reads_them(url: str) -> None:
    sentinels, service, options = sentinel_parts(url)
    theirs, their_service, their_options = parse_redis_sentinel_url(url)
    assert sentinels == theirs
    assert service == (their_service or "mymaster")
    their_options = {
        k: v.replace("%40", "@") if isinstance(v, str) else v for k, v in their_options.items()
    }
    assert options == their_options


@pytest.mark.parametrize("url", ["redis+sentinel://s1", "redis+sentinel://:x@s1:port/0"])
def test_a_sentinel_without_a_port_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="host:port"):
        sentinel_parts(url)

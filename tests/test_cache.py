"""kfadmin's Redis cache backend (kfadmin/cache.py), against the real Redis."""

from __future__ import annotations

import threading

import pytest
import redis

from kfadmin.cache import RedisCache

URL = "redis://127.0.0.1:6379/11"


@pytest.fixture
def cache():
    try:
        redis.Redis.from_url(URL).flushdb()
    except redis.ConnectionError:
        pytest.skip("needs Redis on 127.0.0.1:6379")
    backend = RedisCache(URL, {})
    yield backend
    redis.Redis.from_url(URL).flushdb()


def test_it_stores_reads_and_counts_like_djangos(cache):
    cache.set("fragment", (3, b"<section>", [("Vary", "HX-Request")]), 30)
    assert cache.get("fragment") == (3, b"<section>", [("Vary", "HX-Request")])
    assert cache.get_many(["fragment", "missing"]) == {"fragment": (3, b"<section>", [("Vary", "HX-Request")])}
    assert cache.add("version", 1, timeout=None) is True
    assert cache.incr("version") == 2
    with pytest.raises(ValueError):
        cache.incr("never-set")


def test_it_builds_one_redis_client_and_shares_it(cache):
    clients = {id(cache._cache.get_client()) for _ in range(5)}
    clients.add(id(cache._cache.get_client(write=True)))
    assert len(clients) == 1


def test_the_shared_client_serves_threads_at_once(cache):
    errors = []

    def work(n: int) -> None:
        try:
            for i in range(200):
                cache.set(f"k{n}", i, 30)
                assert cache.get(f"k{n}") == i
        except Exception as failure:  # noqa: BLE001 - reported below
            errors.append(failure)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert cache.get_many([f"k{n}" for n in range(8)]) == {f"k{n}": 199 for n in range(8)}

"""Run a test module again with its app on a real Redis Cluster.

A file ``test_X_on_cluster.py`` beside ``test_X.py`` holds::

    globals().update(again_on_cluster("tests.ussd.test_X"))

and pytest collects every test and fixture of test_X a second time, with ``redis_client`` (the
client the ``app`` fixture runs on) the cluster's (tests/conftest.py's ``redis_cluster``) and the
tests marked ``real_redis`` and ``redis_cluster``. One module a file: two modules' fixtures of
one name (``base``, ``marie``...) must not shadow each other. ``without`` leaves out the tests
that only make sense on fakeredis (a Redis outage played with ``FakeServer.connected``).
"""
from __future__ import annotations

import importlib
from typing import Any

import pytest
import redis


@pytest.fixture(name="redis_client")
def cluster_client(redis_cluster: redis.RedisCluster) -> redis.RedisCluster:
    """The ``redis_client`` of a module run again: the cluster's."""
    return redis_cluster


def again_on_cluster(module_name: str, without: tuple[str, ...] = ()) -> dict[str, Any]:
    module = importlib.import_module(module_name)
    names = {name: value for name, value in vars(module).items()
             if not name.startswith("__") and name not in without}
    names["redis_client"] = cluster_client
    marks = getattr(module, "pytestmark", [])
    names["pytestmark"] = [*(marks if isinstance(marks, list) else [marks]),
                           pytest.mark.real_redis, pytest.mark.redis_cluster]
    return names

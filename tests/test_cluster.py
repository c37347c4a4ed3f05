"""Guichet on a Redis Cluster (state.store): the app configured by its URLs, what the cluster
client sends as a single Redis takes it, and the throwaway cluster's own script.

The flows themselves run on the cluster elsewhere: every test using ``any_redis`` has a
``redis-cluster`` variant (tests/conftest.py), and the ``*_on_cluster.py`` files run the
dialogues, purchases, registrations and SMS modules there again (tests/on_cluster.py).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis
from flask import current_app

from app import create_app
from state import keys, worker
from state.store import Cluster, Store, cluster_from_url, get_redis, get_store, node_url

pytestmark = [pytest.mark.real_redis, pytest.mark.redis_cluster]

ROOT = Path(__file__).resolve().parent.parent


def remember(value: str) -> str:
    """A job run by the worker (its queue in the jobs' Redis) that writes into the cluster."""
    get_redis().set(keys.resume_point("+237699000001"), f"{value}/{current_app.config['UTILITY_NAME']}")
    return value


def test_the_app_takes_the_cluster_from_its_urls_and_its_jobs_from_a_plain_redis(
    redis_cluster: redis.RedisCluster, real_redis_url: str
) -> None:
    # redis_cluster set REDIS_URL=redis+cluster://... and GUICHET_REDIS_JOBS_URL for this test
    app = create_app({"TESTING": True, "UTILITY_NAME": "Eneo"})
    store = get_store(app)
    assert isinstance(store.data, Cluster) and store.cluster
    assert type(store.jobs) is redis.Redis and store.jobs.ping()
    job = worker.queue(app).enqueue(remember, "hello")
    worker.make_worker(app).work(burst=True)
    assert job.get_status() == "finished"
    assert redis_cluster.get(keys.resume_point("+237699000001")) == "hello/Eneo"
    assert store.jobs.exists(job.key)  # rq's keys: in the plain Redis,
    assert not redis_cluster.exists(job.key)  # never in the cluster


def test_a_cluster_needs_a_plain_redis_for_its_jobs(redis_cluster_url: str, real_redis_url: str) -> None:
    with pytest.raises(ValueError, match="GUICHET_REDIS_JOBS_URL"):
        Store.from_url(redis_cluster_url)
    with pytest.raises(ValueError, match="plain Redis"):
        Store.from_url(redis_cluster_url, jobs_url=redis_cluster_url)
    assert node_url(redis_cluster_url) is not None and node_url(real_redis_url) is None


def test_a_transaction_across_hash_tags_is_refused_not_quietly_split(redis_cluster: redis.RedisCluster) -> None:
    """pipeline() is a MULTI, as on a single Redis: keys of two tags fail loudly (the hash-tag
    rule, enforced), rather than run as two unrelated batches."""
    pipe = redis_cluster.pipeline()
    pipe.set(keys.resume_point("+237699000001"), "a")
    pipe.set(keys.order("ORDER1"), "b")
    with pytest.raises(redis.exceptions.RedisClusterException):
        pipe.execute()
    assert redis_cluster.get(keys.order("ORDER1")) is None
    plain = redis_cluster.pipeline(transaction=False)  # asked for: sent node by node
    plain.set(keys.resume_point("+237699000001"), "a")
    plain.set(keys.order("ORDER1"), "b")
    assert plain.execute() == [True, True]


def test_keys_scan_and_mget_see_every_master(redis_cluster: redis.RedisCluster) -> None:
    names = [keys.order(f"ORDER{i}") for i in range(60)]  # tags spread over the three masters
    for name in names:
        redis_cluster.set(name, name)
    assert len({redis_cluster.keyslot(name) for name in names}) > 3
    assert sorted(redis_cluster.keys(keys.order("*"))) == sorted(names)
    assert sorted(redis_cluster.scan_iter(match=keys.order("*"), count=7)) == sorted(names)
    assert redis_cluster.mget(names + [keys.order("NONE")]) == names + [None]
    assert redis_cluster.delete(*names) == 60


def test_a_registered_script_rides_a_pipeline_even_after_a_script_flush(redis_cluster: redis.RedisCluster) -> None:
    script = redis_cluster.register_script("return redis.call('incr', KEYS[1])")
    for node in redis_cluster.get_primaries():
        node.redis_connection.script_flush()
    key = keys.phone_limit("+237699000001", "test")
    pipe = redis_cluster.pipeline(transaction=False)
    pipe.get(key)
    script(keys=[key], client=pipe)
    pipe.eval("return redis.call('incr', KEYS[1])", 1, key)
    assert pipe.execute() == [None, 1, 2]
    assert script(keys=[key]) == 3


def test_the_ci_script_starts_a_cluster_and_stops_it(tmp_path: Path) -> None:
    command = [str(ROOT / ".ci" / "redis-cluster")]
    started = subprocess.run([*command, "start", "--dir", str(tmp_path)], capture_output=True, text=True,
                             timeout=60, check=True)
    url = started.stdout.strip()
    node = node_url(url)
    assert node is not None
    try:
        client = redis.Redis.from_url(node, decode_responses=True)
        assert client.cluster("info")["cluster_state"] == "ok"
        assert len(client.cluster("nodes")) == 3
        client.close()
    finally:
        subprocess.run([*command, "stop", "--dir", str(tmp_path)], timeout=30, check=True)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(node, socket_connect_timeout=1).ping()


@pytest.mark.redis_cluster
def test_a_cluster_named_by_several_nodes_is_found_while_the_first_is_down(redis_cluster_url: str) -> None:
    from tests.redis_server import free_port

    node = node_url(redis_cluster_url)
    assert node is not None
    dead = f"127.0.0.1:{free_port()}"  # a master gone, as after its failover
    scheme, _, rest = node.partition("://")
    client = cluster_from_url(f"{scheme}://{dead},{rest}", socket_connect_timeout=1)
    client.set("guichet:{several-nodes}:probe", "found")
    assert client.get("guichet:{several-nodes}:probe") == "found"
    client.close()

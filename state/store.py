"""The Redis connection: a real server at REDIS_URL, or an embedded in-process store.

The embedded store (fakeredis) lets `make run` work on a machine with no Redis server.
It lives in this process only, so the web app and the worker must share the process,
and it is gone when the process exits: it is for trying Guichet, never for production.

Every client of a real server has a socket timeout (GUICHET_REDIS_TIMEOUT, 2 s) and a
connect timeout (GUICHET_REDIS_CONNECT_TIMEOUT, 1 s): a frozen Redis (paused, swapping,
a network that drops packets) must turn into an error the caller handles (a polite END
screen, a 503 from /readyz) within seconds, never a request thread held for as long as
the freeze lasts. redis-py retries a failed command 3 times with backoff by default,
which would multiply that bound; ours retries once, at once, and only a broken
connection (the pooled socket of a Redis that restarted), never a timeout.

On a Redis Cluster (``REDIS_URL=redis+cluster://host:port``, any one node; ``rediss+cluster://``
with TLS) ``data`` is a `redis.cluster.RedisCluster` with the same timeouts and retry. Every
key one operation touches together shares a hash tag (state.keys), so each MULTI and each
script stays in one slot; a plain pipeline may span slots, and is then sent node by node.
Background jobs cannot follow: see `Store`.
"""
from __future__ import annotations

import builtins
import datetime
import functools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar, cast

import fakeredis
import redis
from flask import Flask, current_app
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel
from rq.connections import get_connection_kwargs

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

EXTENSION = "guichet.redis"
TIMEOUT = 2.0  # seconds a command may take (GUICHET_REDIS_TIMEOUT)
CONNECT_TIMEOUT = 1.0  # seconds to open a connection (GUICHET_REDIS_CONNECT_TIMEOUT)

_embedded_server: fakeredis.FakeServer | None = None

EMBEDDED_WARNING = (
    "\n" + "!" * 78 + "\n"
    "!! REDIS_URL is not set: running on an EMBEDDED in-process store (fakeredis).\n"
    "!! Sessions, customers and jobs live in this process and vanish when it stops.\n"
    "!! Fine for trying Guichet; set REDIS_URL=redis://host:6379/0 for anything real.\n"
    + "!" * 78
)


# -- the decoded client, typed -------------------------------------------------------------
# redis-py types every reply ``bytes | str`` (it cannot know a client's decode_responses)
# and its hash and stream parameters refuse a ``dict[str, str]`` (a Mapping's key type is
# invariant). Guichet's own keys all live behind the one client made with
# decode_responses=True (Store.data): these protocols say, once, what that client takes
# and answers, for the commands Guichet sends. Store casts its client to TextRedis; every
# module that holds it is typed with TextRedis, or TextCommands when it may be a pipeline.
Value = str | int | float | bytes  # what a command writes (redis-py encodes numbers itself)


class TextCommands(Protocol):
    """The commands Guichet sends on the decoded client or on one of its pipelines. On a
    pipeline outside WATCH they are queued and answer the pipeline, not these types: their
    results then come back from ``execute()``."""

    # strings and keys
    def get(self, name: str) -> str | None: ...
    def mget(self, keys: Iterable[str], *args: str) -> list[str | None]: ...
    def set(
        self, name: str, value: Value, ex: int | datetime.timedelta | None = None,
        px: int | datetime.timedelta | None = None, nx: bool = False, xx: bool = False,
    ) -> bool | None: ...
    def incr(self, name: str, amount: int = 1) -> int: ...
    def delete(self, *names: str) -> int: ...
    def expire(self, name: str, time: int | datetime.timedelta) -> bool: ...
    def eval(self, script: str, numkeys: int, *keys_and_args: Value) -> Any: ...

    # hashes
    def hget(self, name: str, key: str) -> str | None: ...
    def hgetall(self, name: str) -> dict[str, str]: ...
    def hmget(self, name: str, keys: str | Iterable[str], *args: str) -> list[str | None]: ...
    def hset(
        self, name: str, key: str | None = None, value: Value | None = None, mapping: Mapping[str, Value] | None = None,
    ) -> int: ...
    def hsetnx(self, name: str, key: str, value: Value) -> int: ...
    def hincrby(self, name: str, key: str, amount: int = 1) -> int: ...
    def hdel(self, name: str, *keys: str) -> int: ...

    # lists, sets, sorted sets
    def lpush(self, name: str, *values: Value) -> int: ...
    def lrange(self, name: str, start: int, end: int) -> list[str]: ...
    def ltrim(self, name: str, start: int, end: int) -> bool: ...
    def sadd(self, name: str, *values: Value) -> int: ...
    def srem(self, name: str, *values: Value) -> int: ...
    def smembers(self, name: str) -> builtins.set[str]: ...  # builtins: `set` is a command here
    def zadd(self, name: str, mapping: Mapping[str, float], nx: bool = False, xx: bool = False) -> int: ...
    def zrem(self, name: str, *values: str) -> int: ...
    def zcard(self, name: str) -> int: ...
    def scard(self, name: str) -> int: ...
    def srandmember(self, name: str, number: int | None = None) -> Any: ...
    def zrange(self, name: str, start: int, end: int) -> list[str]: ...

    # HyperLogLog (state.tally: the distinct sessions of a minute)
    def pfadd(self, name: str, *values: Value) -> int: ...
    def pfcount(self, *sources: str) -> int: ...
    def zrangebyscore(
        self, name: str, min: float | str, max: float | str, start: int | None = None, num: int | None = None,
    ) -> list[str]: ...

    # streams
    def xadd(
        self, name: str, fields: Mapping[str, Value], id: str = "*", maxlen: int | None = None,
        approximate: bool = True,
    ) -> str: ...
    def xrevrange(
        self, name: str, max: str = "+", min: str = "-", count: int | None = None,
    ) -> list[tuple[str, dict[str, str]]]: ...


class TextPipeline(TextCommands, Protocol):
    """A pipeline of the decoded client (``TextRedis.pipeline()``)."""

    def __enter__(self) -> TextPipeline: ...
    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None,
    ) -> None: ...
    def execute(self, raise_on_error: bool = True) -> list[Any]: ...
    def watch(self, *names: str) -> bool: ...
    def multi(self) -> None: ...
    def unwatch(self) -> bool: ...


class TextScript(Protocol):
    """A Lua script registered on the decoded client (``TextRedis.register_script``)."""

    def __call__(
        self, keys: Sequence[str] | None = None, args: Iterable[Value] | None = None,
        client: TextCommands | None = None,
    ) -> Any: ...


class TextRedis(TextCommands, Protocol):
    """The decoded-str client (Store.data, get_redis())."""

    def pipeline(self, transaction: bool = True) -> TextPipeline: ...
    def register_script(self, script: str) -> TextScript: ...
    def scan_iter(self, match: str | None = None, count: int | None = None) -> Iterator[str]: ...
    def ping(self) -> bool: ...


def one_quick_retry() -> Retry:
    """Retry a command once, at once, after a broken connection only: a Redis that
    restarted leaves every pooled socket dead, and the second try opens a new one. A
    timeout is not retried: the caller's time bound stays the timeout, not a multiple."""
    return Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))


# -- Redis Cluster ---------------------------------------------------------------------------
CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
# redis-py 6.1 is the first whose cluster pipelines take WATCH and MULTI (a transaction in one
# slot), which the outbox and the payment records use. Older ones still serve a single Redis.
CLUSTER_NEEDS_REDIS_PY = (6, 1)
_script_bodies: dict[str, str] = {}  # SHA1 -> body of every script registered on a cluster client


def cluster_unsupported() -> str | None:
    """Why this redis-py cannot serve a Redis Cluster, or None when it can."""
    found = tuple(int(part) for part in redis.__version__.split(".")[:2] if part.isdigit())
    if found < CLUSTER_NEEDS_REDIS_PY:
        return f"redis-py {redis.__version__} has no transactions on a Redis Cluster: 6.1 or later is needed"
    return None


def node_url(url: str) -> str | None:
    """The plain ``redis://`` URL of a cluster's node when ``url`` names a cluster
    (``redis+cluster://``), else None."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    return f"{plain}://{rest}" if sep and plain else None


# -- Redis Sentinel --------------------------------------------------------------------------
@dataclass(frozen=True)
class Watched:
    """A master watched by Sentinel, as ``redis+sentinel://[:password@]host:port[,host:port...]/service[/db]``
    names it."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    password: str | None = None


def sentinel_of(url: str) -> Watched | None:
    """The sentinels and service ``url`` names when it is a ``redis+sentinel://`` URL, else None.
    ValueError when it is one without a sentinel or a service."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "redis+sentinel":
        return None
    credentials, at, hosts_and_path = rest.rpartition("@")
    password = credentials.partition(":")[2] or None if at else None
    hosts, _, path = hosts_and_path.partition("/")
    service, _, db = path.partition("/")
    sentinels = []
    for host in filter(None, hosts.split(",")):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "26379")
        sentinels.append((name or host, int(port)))
    if not sentinels or not service:
        raise ValueError("a Sentinel URL reads redis+sentinel://host:port[,host:port...]/service[/db]")
    return Watched(sentinels, service, int(db or 0), password)


def _script_keys(args: tuple[Any, ...]) -> list[Any] | None:
    """The keys of an EVAL or EVALSHA, read from its arguments; None for another command."""
    if len(args) > 2 and str(args[0]).upper() in ("EVAL", "EVALSHA"):
        return list(args[3 : 3 + int(args[2])])
    return None


class Cluster(RedisCluster):
    """A RedisCluster that sends what Guichet sends as a single Redis takes it.

    - ``pipeline()`` is a MULTI unless told otherwise, as on ``redis.Redis`` (RedisCluster's
      default is a plain pipeline, which would silently drop the atomicity a caller asked
      for). A MULTI whose keys span slots fails (CROSSSLOT) instead: the hash-tag rule,
      enforced.
    - ``keys`` asks every master (redis-py asks one node); ``scan_iter`` already walks them all.
    - ``mget`` of keys in several slots (orders, vends: one tag each) reads them slot by slot
      in one pipelined round per node; it was never atomic in Guichet's use.
    - its pipelines take ``eval``, ``evalsha`` (a registered script) and single-slot ``mget``,
      which redis-py's ClusterPipeline refuses (see ClusterPipelineOf).
    """

    # A command is tried again (once: one_quick_retry) after a broken connection or a cluster
    # changing its layout, as redis-py does, but not after a timeout (redis-py does): the
    # caller's time bound stays the timeout, as on a single Redis. (redis-py's pipelines
    # keep their own list: a pipeline's timeout is still tried once more.)
    ERRORS_ALLOW_RETRY = tuple(  # type: ignore[assignment]  # (redis-py types it as its own four)
        error for error in RedisCluster.ERRORS_ALLOW_RETRY if error is not redis.TimeoutError)

    def pipeline(self, transaction: bool | None = True, shard_hint: Any = None) -> ClusterPipeline:
        pipe = super().pipeline(transaction=transaction, shard_hint=shard_hint)
        pipe.__class__ = ClusterPipelineOf  # same object, our three methods added
        return pipe

    def _get_command_keys(self, *args: Any) -> Any:
        # redis-py asks the server (COMMAND GETKEYS: a round trip of its own, before every
        # script in a pipeline) for the keys of a command with movable keys, EVAL among
        # them; a script's keys are in its arguments.
        keys = _script_keys(args)
        return keys if keys is not None else super()._get_command_keys(*args)

    def keys(self, pattern: Any = "*", **kwargs: Any) -> list[Any]:
        # redis-py sends KEYS to one node only (its default node): every master's, merged.
        return [name for node in primaries(self) for name in node.keys(pattern, **kwargs)]

    def mget(self, keys: Any, *args: Any) -> list[Any]:
        return cast(list[Any], self.mget_nonatomic(keys, *args))

    def _execute_pipeline_by_slot(self, command: str, slots_to_args: Mapping[int, Iterable[Any]]) -> list[Any]:
        # What redis-py's multi-key commands (DELETE, EXISTS, MGET across slots) send, one
        # command per slot: a plain pipeline, which its own ``self.pipeline()`` no longer is.
        pipe = self.pipeline(transaction=False)
        for slot, slot_args in slots_to_args.items():
            pipe.execute_command(command, *slot_args, target_nodes=[self.nodes_manager.get_node_from_slot(slot)])
        return pipe.execute()

    def register_script(self, script: Any) -> Any:
        registered = super().register_script(script)
        _script_bodies[registered.sha] = script.decode() if isinstance(script, bytes) else str(script)
        return registered


class ClusterPipelineOf(ClusterPipeline):
    """redis-py's ClusterPipeline with EVAL, EVALSHA and MGET queued like any command (it
    blocks them; the slot is still found from the keys, and Redis refuses CROSSSLOT). A
    registered script is sent whole (EVAL): EVALSHA on a pipeline would fail with NOSCRIPT
    on a node that never loaded it, and nothing could load it first without a round trip."""

    def _get_command_keys(self, *args: Any) -> Any:
        keys = _script_keys(args)  # as Cluster's
        return keys if keys is not None else super()._get_command_keys(*args)

    def eval(self, script: Any, numkeys: int, *keys_and_args: Any) -> Any:  # type: ignore[override]
        return self.execute_command("EVAL", script, numkeys, *keys_and_args)

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        body = _script_bodies.get(sha)
        if body is None:
            return self.execute_command("EVALSHA", sha, numkeys, *keys_and_args)
        return self.execute_command("EVAL", body, numkeys, *keys_and_args)

    def mget(self, keys: Any, *args: Any) -> Any:
        names = [keys] if isinstance(keys, (str, bytes)) else list(keys)
        return self.execute_command("MGET", *names, *args)


def primaries(client: Any) -> list[Any]:
    """One plain client per master of a cluster (a plain client's own self otherwise): what
    walks the whole keyspace (SCAN) or empties it must ask each master."""
    if isinstance(client, RedisCluster):
        return [node.redis_connection for node in client.get_primaries()]
    return [client]


def embedded_server() -> fakeredis.FakeServer:
    """The one embedded server of this process, shared by every client in it."""
    global _embedded_server
    if _embedded_server is None:
        _embedded_server = fakeredis.FakeServer()
    return _embedded_server


class Store:
    """The two clients Guichet needs.

    ``data`` decodes replies to ``str`` (all our own keys); ``jobs`` returns bytes,
    which rq requires (its queues, and the breakers' state, which pybreaker keeps there).

    Both are one Redis, except on a Redis Cluster: then ``jobs`` is a plain Redis of its
    own (``GUICHET_REDIS_JOBS_URL``), because rq does not support Redis Cluster: its keys
    carry no hash tag (``rq:queue:NAME``, ``rq:job:ID``) yet it writes a job and its queue
    in one MULTI, and its Lua scripts (Queue.empty) build key names inside the script, which
    a cluster refuses. rq 3.0 has no cluster support (https://github.com/rq/rq/issues/1048 is
    open; so is the pull request that would add it, https://github.com/rq/rq/pull/2418).
    """

    def __init__(self, data: redis.Redis | RedisCluster, jobs: redis.Redis, embedded: bool) -> None:
        # The one place the decoded client is given its type: made with decode_responses=True.
        self.data = cast(TextRedis, data)
        self.jobs = jobs
        self.embedded = embedded

    @property
    def cluster(self) -> bool:
        return isinstance(self.data, RedisCluster)

    @classmethod
    def from_url(
        cls, url: str | None, timeout: float = TIMEOUT, connect_timeout: float = CONNECT_TIMEOUT,
        jobs_url: str | None = None,
    ) -> Store:
        """``url``: a Redis (``redis://``), a Redis Cluster (``redis+cluster://``) or None (the
        embedded store). ``jobs_url``: the plain Redis of the jobs, required with a cluster,
        else ``url`` itself by default."""
        if not url:
            server = embedded_server()
            return cls(
                fakeredis.FakeRedis(server=server, decode_responses=True),
                fakeredis.FakeRedis(server=server),
                embedded=True,
            )
        bounded = {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout, "health_check_interval": 30}
        watched = sentinel_of(url)
        if watched is not None:
            if jobs_url:
                raise ValueError("with Sentinel the jobs live on the same master: leave GUICHET_REDIS_JOBS_URL unset")
            sentinel = Sentinel(watched.sentinels, sentinel_kwargs={"socket_timeout": timeout,
                                                                     "socket_connect_timeout": connect_timeout})
            # Both clients ask the sentinels where the master is, again after a broken
            # connection: a failover is a reconnection to the promoted replica.
            master = {"db": watched.db, "password": watched.password, "retry": one_quick_retry(), **bounded}
            return cls(sentinel.master_for(watched.service, decode_responses=True, **master),
                       sentinel.master_for(watched.service, **master), embedded=False)
        node = node_url(url)
        if node is None:
            data: redis.Redis | RedisCluster = redis.Redis.from_url(
                url, decode_responses=True, retry=one_quick_retry(), **bounded)
        else:
            if not jobs_url:
                raise ValueError(
                    "REDIS_URL names a Redis Cluster: set GUICHET_REDIS_JOBS_URL to a plain Redis "
                    "for the background jobs (rq does not support Redis Cluster)")
            data = cluster_from_url(node, retry=one_quick_retry(), **bounded)
        jobs_url = jobs_url or url
        if node_url(jobs_url) is not None:
            raise ValueError("GUICHET_REDIS_JOBS_URL must be a plain Redis (rq does not support Redis Cluster)")
        return cls(data, redis.Redis.from_url(jobs_url, retry=one_quick_retry(), **bounded), embedded=False)

    @classmethod
    def from_client(cls, client: redis.Redis | RedisCluster, jobs_url: str | None = None) -> Store:
        """Wrap a test's client (fakeredis, real, or a cluster's, whose jobs go to ``jobs_url``,
        by default GUICHET_REDIS_JOBS_URL) in a Store sharing its connection."""
        jobs: redis.Redis
        if isinstance(client, RedisCluster):
            jobs_url = jobs_url or os.environ.get("GUICHET_REDIS_JOBS_URL")
            if not jobs_url:
                raise ValueError("a cluster client needs GUICHET_REDIS_JOBS_URL, a plain Redis for the jobs")
            return cls(client, redis.Redis.from_url(jobs_url, retry=one_quick_retry()), embedded=False)
        pool = client.connection_pool
        if isinstance(client, fakeredis.FakeRedis):
            jobs = _fake_twin(client)
        else:
            kwargs = {**pool.connection_kwargs, "decode_responses": False}
            jobs = redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))
        return cls(client, jobs, embedded=False)

    def blocking_jobs_client(self, socket_timeout: float) -> redis.Redis:
        """A bytes client of its own for a command that blocks on purpose (the rq worker's
        BLMOVE waits up to its dequeue timeout for a job): its socket timeout must outlast
        that wait, and rq raises the timeout of whatever pool it is given, so the worker
        must not share the pool the web requests enqueue through."""
        pool = self.jobs.connection_pool
        if isinstance(self.jobs, fakeredis.FakeRedis):
            return _fake_twin(self.jobs)
        # rq's copy of the settings, without the runtime state redis-py keeps among them.
        kwargs = get_connection_kwargs(self.jobs)
        kwargs.update(socket_timeout=socket_timeout, retry=one_quick_retry())
        return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))

    def ping(self) -> bool:
        """Whether Redis answers: on a cluster, every master (a phone's hops need its own)."""
        try:
            return all(node.ping() for node in primaries(self.data))
        except redis.RedisError:
            return False


def cluster_from_url(node: str, **kwargs: Any) -> Cluster:
    """Guichet's cluster client on the cluster of the node at ``node`` (a plain redis:// URL),
    replies decoded. Several nodes, ``redis://host:port,host:port``, are each tried until one
    answers: a process started while the first is down (its master failed over) still finds
    the cluster."""
    if (unsupported := cluster_unsupported()) is not None:
        raise RuntimeError(unsupported)
    scheme, _, rest = node.partition("://")
    credentials, at, hosts_and_path = rest.rpartition("@")
    hosts, slash, path = hosts_and_path.partition("/")
    first, *others = hosts.split(",")
    url = f"{scheme}://{credentials}{at}{first}{slash}{path}"
    if not others:
        return cast(Cluster, Cluster.from_url(url, decode_responses=True, **kwargs))
    startup = [ClusterNode(*_host_port(host)) for host in [first, *others]]
    return cast(Cluster, Cluster.from_url(url, decode_responses=True, startup_nodes=startup, **kwargs))


def _host_port(host: str) -> tuple[str, int]:
    name, _, port = host.rpartition(":")
    return (name, int(port)) if name else (host, 6379)


def _fake_twin(client: fakeredis.FakeRedis) -> fakeredis.FakeRedis:
    """A bytes client on the same fake server as ``client``. A FakeRedis made without a
    server gets one of its own, found again by its (random) host and port and version."""
    settings = client.connection_pool.connection_kwargs
    same = ("server", "host", "port", "version", "server_type", "lua_modules")
    return fakeredis.FakeRedis(**{name: settings[name] for name in same if settings.get(name) is not None})


def init_app(app: Flask) -> None:
    # The store is opened on first use, so commands that never touch Redis
    # (`guichet dial`, `guichet sts token`) neither connect nor warn.
    app.extensions[EXTENSION] = None


def get_store(app: Flask | None = None) -> Store:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    store: Store | None = app.extensions.get(EXTENSION)
    if store is None:
        client = app.config.get("REDIS_CLIENT")
        if client is not None:
            store = Store.from_client(client, app.config.get("REDIS_JOBS_URL"))
        else:
            store = Store.from_url(
                app.config.get("REDIS_URL"),
                timeout=float(app.config.get("REDIS_TIMEOUT") or TIMEOUT),
                connect_timeout=float(app.config.get("REDIS_CONNECT_TIMEOUT") or CONNECT_TIMEOUT),
                jobs_url=app.config.get("REDIS_JOBS_URL"),
            )
            if store.embedded:
                # A line a record: the banner stays a banner in the console format and in
                # JSON lines alike (both escape a newline inside a record).
                for line in EMBEDDED_WARNING.strip("\n").splitlines():
                    log.warning("%s", line)
        app.extensions[EXTENSION] = store
    return store


def get_redis(app: Flask | None = None) -> TextRedis:
    """The decoded-str client of the current app."""
    return get_store(app).data


def caused_by_redis_outage(error: BaseException | None) -> bool:
    """Whether ``error``, or what it was raised from, is Redis being away (a broken
    connection, a timeout), not a refused command: e.g. a service's "unavailable" error
    raised by `redis_failure_means` during an outage, which a caller may rather retry in
    seconds than treat as its backend being down."""
    for _ in range(10):
        if error is None:
            return False
        # A Redis Cluster refusing every command while a dead master's replica is not yet
        # promoted (CLUSTERDOWN) is Redis away too, for a second or two.
        if isinstance(error, (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ClusterDownError)):
            return True
        error = error.__cause__ or error.__context__
    return False


def redis_failure_means(
    error: Callable[[str], Exception], what: str
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a service method whose storage is Redis: when Redis fails, the caller
    sees the service's own "unavailable" error (retryable), not a Redis exception."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except redis.RedisError as exc:
                raise error(f"{what} unavailable: {exc.__class__.__name__}") from exc

        return guarded

    return decorate


# -- replication -------------------------------------------------------------------------------
def execute_replicated(pipe: TextPipeline, client: TextRedis, key: str, replicas: int,
                       timeout_ms: int) -> tuple[list[Any], int | None]:
    """Execute ``pipe`` (not a MULTI: WAIT inside one does not wait) with ``WAIT replicas
    timeout_ms`` sent last, to the master that holds ``key``: the pipeline's replies, and
    how many replicas acknowledged every write made before the WAIT (None when the WAIT
    itself failed: a server that refuses it, fakeredis). Replication is asynchronous; this
    makes a write that must survive a failover wait for a replica, at most ``timeout_ms``.

    WAIT counts replicas that have what *its own connection* wrote: sent on another pooled
    connection it would answer at once, having waited for nothing. Queued on the pipeline it
    travels on the pipeline's connection: a single Redis's pipeline is one connection, and a
    Cluster's sends each node's commands on one connection to that node, in order."""
    # The protocols type neither execute_command's routing nor the client underneath them.
    queue: Any = pipe
    underneath: Any = client
    if isinstance(underneath, RedisCluster):
        queue.execute_command("WAIT", replicas, timeout_ms, target_nodes=underneath.get_node_from_key(key))
    else:
        queue.execute_command("WAIT", replicas, timeout_ms)
    replies = pipe.execute(raise_on_error=False)
    *written, acknowledged = replies
    for reply in written:
        if isinstance(reply, Exception):
            raise reply
    if isinstance(acknowledged, Exception):
        log.warning("WAIT after writing %s failed: %s", key, acknowledged)
        return written, None
    return written, int(acknowledged)

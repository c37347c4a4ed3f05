"""The two floors Guichet's hop is measured against (bench/peers.py serves them).

``bare``: Flask answering ``END ok``, the WSGI floor: what any Flask endpoint costs.
``redis_floor``: the same endpoint doing a hop's Redis work and nothing else (one pipeline:
the lock with SET NX and two reads; a second: the session, the replay cache, their expiry
and the lock's release): the limit for any server that keeps its sessions in Redis. It
reads REDIS_URL.
"""
from __future__ import annotations

import os

import redis
from flask import Flask, Response, request

bare = Flask("bare")


@bare.post("/ussd")
def bare_hop() -> Response:
    return Response("END ok", mimetype="text/plain")


redis_floor = Flask("redis_floor")
_redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))


@redis_floor.post("/ussd")
def redis_hop() -> Response:
    session, phone = request.form.get("sessionId", "x"), request.form.get("phoneNumber", "")
    tag = f"{{{phone}}}:{session}"
    pipe = _redis.pipeline(transaction=False)
    pipe.set(f"l:{tag}", "1", nx=True, px=5000)
    pipe.get(f"s:{tag}")
    pipe.hget(f"r:{tag}", "h")
    pipe.execute()
    pipe = _redis.pipeline(transaction=False)
    pipe.set(f"s:{tag}", "x" * 300, ex=180)
    pipe.hset(f"r:{tag}", "h", "y")
    pipe.expire(f"r:{tag}", 180)
    pipe.delete(f"l:{tag}")
    pipe.execute()
    return Response("CON Welcome\n1. Buy", mimetype="text/plain")

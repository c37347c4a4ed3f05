"""USSD hop load generator: P processes x T threads of keep-alive clients (standard library only).

Each thread holds one keep-alive HTTP connection (opened again when the server closes it)
and runs Africa's Talking 3-hop dialogues back to back: text "" -> "1" -> "1*01234567890",
a fresh session id and phone per dialogue. A hop is an error when the status is not 200,
the body starts with neither CON nor END, or the request raised. Only hops that start
after the warm-up and end inside the window are counted. The method is the one of the
peer benchmark the issue measured with, so figures compare.

    .venv/bin/python bench/loadgen.py --port 8000 --path /ussd/africastalking --duration 15
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import random
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

HOPS = ("", "1", "1*01234567890")


@dataclass
class Load:
    """What one run measured."""

    hops: int
    duration: float
    errors: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.hops / self.duration


def _client(port: int, path: str, start: float, end: float, out: dict[str, list[float] | int],
            lock: threading.Lock) -> None:
    latencies: list[float] = []
    errors = 0
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Connection": "keep-alive"}
    finished = False
    while not finished:
        session, phone = "ATUid_" + uuid.uuid4().hex, f"+2376{random.randrange(10**8):08d}"
        for text in HOPS:
            body = urlencode({"sessionId": session, "serviceCode": "*384#", "phoneNumber": phone,
                              "networkCode": "62401", "text": text})
            began = time.perf_counter()
            ok = False
            try:
                connection.request("POST", path, body=body, headers=headers)
                answer = connection.getresponse()
                data = answer.read()
                ok = answer.status == 200 and data[:3] in (b"CON", b"END")
            except (OSError, http.client.HTTPException):
                connection.close()
            ended = time.perf_counter()
            if ended > end:
                finished = True
                break
            if began >= start:
                if ok:
                    latencies.append(ended - began)
                else:
                    errors += 1
    connection.close()
    with lock:
        out["latencies"].extend(latencies)  # type: ignore[union-attr]
        out["errors"] += errors  # type: ignore[operator]


def _process(port: int, path: str, threads: int, start_wall: float, warmup: float, duration: float,
             results: multiprocessing.Queue) -> None:
    # One wall-clock start for every process, turned into this process's perf_counter.
    offset = time.perf_counter() - time.time()
    start = start_wall + warmup + offset
    out: dict[str, list[float] | int] = {"latencies": [], "errors": 0}
    lock = threading.Lock()
    while time.time() < start_wall:
        time.sleep(0.005)
    clients = [threading.Thread(target=_client, args=(port, path, start, start + duration, out, lock))
               for _ in range(threads)]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    results.put(out)


def _percentile(ordered: list[float], p: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1)]


def run_load(port: int, path: str, procs: int = 2, threads: int = 16, duration: float = 15.0,
             warmup: float = 2.0) -> Load:
    results: multiprocessing.Queue = multiprocessing.Queue()
    start_wall = time.time() + 1.0
    workers = [multiprocessing.Process(target=_process, args=(port, path, threads, start_wall, warmup, duration,
                                                              results)) for _ in range(procs)]
    for process in workers:
        process.start()
    outs = [results.get() for _ in workers]
    for process in workers:
        process.join()
    latencies = sorted(x for out in outs for x in out["latencies"])
    return Load(
        hops=len(latencies),
        duration=duration,
        errors=sum(out["errors"] for out in outs),
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        max_ms=(latencies[-1] * 1000) if latencies else float("nan"),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/ussd/africastalking")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    load = run_load(args.port, args.path, args.procs, args.threads, args.duration, args.warmup)
    print(json.dumps({**asdict(load), "hops_per_s": round(load.rate, 1)}))


if __name__ == "__main__":
    main()

"""Guichet: the application factory and the `guichet` command line.

A hop flows one way: gateway adapter (ussd.gateways) -> session (state.sessions)
-> menu machine (ussd.menu) -> domain service (utility) -> journal/outbox (state) -> SMS (sms).
"""
from __future__ import annotations

import logging
import os
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

DEFAULTS: dict[str, Any] = {
    "REDIS_URL": None,  # None: embedded in-process store (see state.store)
    "ADMIN_KEY": None,  # None: the /admin endpoints do not exist
    "UTILITY_NAME": "Guichet",
    "DEFAULT_LANGUAGE": "fr",
    "SESSION_TTL": 180,  # seconds; refreshed on every hop
    "RESUME_TTL": 300,  # a dropped session can be resumed for this long
    "LOCK_TIMEOUT": 5.0,  # seconds a hop waits for another hop of its session
    "SERVICE_CODES": (),  # the service's own codes, e.g. ["*384*1234#"] on a shared code
    "DEMO_CUSTOMERS": 500,  # customers seeded on the embedded store by `guichet serve`
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,  # admin CSV uploads; USSD has its own 4 KB cap
    # Vending (utility.vending): the built-in STS engine, or the utility's XMLVend server.
    "VENDING_BACKEND": "builtin",
    "STS_VENDING_KEY": None,  # hex; None: the public STS test key (demo meters only)
    "STS_KEY_TYPE": 2,
    "STS_SGC": "123456",
    "STS_TARIFF_INDEX": "01",
    "STS_KRN": 1,
    "STS_BASE_DATE": "2014-01-01",
    "STS_TABLES": "test",
    "TARIFFS_FILE": None,  # None: the shipped utility/vending/tariffs.toml
    "XMLVEND_URL": None,
    "XMLVEND_CLIENT_ID": None,
    "XMLVEND_TERMINAL_ID": None,
    "XMLVEND_OPERATOR": None,
    "XMLVEND_PASSWORD": None,
    "XMLVEND_TIMEOUT": 10.0,
}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    # GUICHET_ADMIN_KEY -> ADMIN_KEY, ...; values that parse as JSON become numbers.
    app.config.from_prefixed_env("GUICHET")
    if os.environ.get("REDIS_URL"):
        app.config["REDIS_URL"] = os.environ["REDIS_URL"]
    if test_config:
        app.config.update(test_config)
    if app.config["ADMIN_KEY"] is not None:
        app.config["ADMIN_KEY"] = str(app.config["ADMIN_KEY"])

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from state import store

    store.init_app(app)

    from state import health

    app.register_blueprint(health.bp)

    from utility import admin, cli as utility_cli
    from utility.vending import cli as vending_cli
    from ussd import dial, views as ussd_views

    ussd_views.init_app(app)
    admin.init_app(app)  # registers /admin only when ADMIN_KEY is set
    utility_cli.init_app(app)
    vending_cli.init_app(app)
    dial.init_app(app)

    from state import worker

    worker.init_app(app)
    app.cli.add_command(serve_command)
    return app


@click.command("serve")
@click.option("--host", envvar="HOST", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", envvar="PORT", default=8000, show_default=True, help="Port to listen on.")
@click.option("--threads", envvar="GUICHET_THREADS", default=16, show_default=True, help="Request threads per process.")
@click.option(
    "--workers",
    envvar="WEB_CONCURRENCY",
    type=int,
    default=None,
    help="Serving processes. Default: one per CPU with REDIS_URL, one on the embedded store.",
)
@click.option("--no-worker", is_flag=True, help="Do not run the background worker in this process.")
@with_appcontext
def serve_command(host: str, port: int, threads: int, workers: int | None, no_worker: bool) -> None:
    """Serve the webhooks with gunicorn, and the background worker beside them."""
    from gunicorn.app.base import BaseApplication

    from state import worker
    from state.store import get_store

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    embedded = get_store(app).embedded
    if embedded:
        if workers not in (None, 1):
            raise click.UsageError("the embedded store lives in one process: set REDIS_URL to serve with several")
        workers = 1
    elif workers is None:
        workers = os.cpu_count() or 1

    def post_worker_init(_worker: object) -> None:
        # Runs in each serving process (after the fork), so the embedded store and the
        # job worker's connections belong to the process that serves the requests.
        if embedded:
            seed_embedded_demo(app)
        if not no_worker:
            worker.start_in_thread(app)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": threads,
                "timeout": 30,
                "accesslog": "-",
                "post_worker_init": post_worker_init,
            }
            for name, value in settings.items():
                self.cfg.set(name, value)

        def load(self) -> Flask:
            return app

    Server().run()


def seed_embedded_demo(app: Flask) -> None:
    from utility.customers import RedisCustomerBase
    from utility.demo import DEMO_PHONES, seed_demo

    from state.store import get_redis

    with app.app_context():
        result = seed_demo(RedisCustomerBase(get_redis()), int(app.config["DEMO_CUSTOMERS"]))
    app.logger.warning(
        "embedded store seeded with %d demo customers; try the phones %s",
        result.imported + result.updated,
        ", ".join(DEMO_PHONES),
    )


def main() -> None:
    """Entry point of the `guichet` console script (Flask's CLI around create_app)."""
    cli = FlaskGroup(create_app=create_app, add_version_option=False, load_dotenv=False)
    cli.help = "Guichet: USSD + SMS self-service for utilities."
    cli.main(prog_name="guichet")


if __name__ == "__main__":
    main()

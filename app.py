"""Guichet: the application factory and the `guichet` command line.

A hop flows one way: gateway adapter (ussd.gateways) -> session (state.sessions)
-> menu machine (ussd.menu) -> domain service (utility) -> journal/outbox (state) -> SMS (sms).
"""
from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask
from flask.cli import FlaskGroup

DEFAULTS: dict[str, Any] = {
    "REDIS_URL": None,  # None: embedded in-process store (see state.store)
    "ADMIN_KEY": None,  # None: the /admin endpoints do not exist
    "UTILITY_NAME": "Guichet",
    "DEFAULT_LANGUAGE": "fr",
    "SESSION_TTL": 180,  # seconds; refreshed on every hop
    "RESUME_TTL": 300,  # a dropped session can be resumed for this long
    "LOCK_TIMEOUT": 5.0,  # seconds a hop waits for another hop of its session
    "DEMO_CUSTOMERS": 500,  # customers seeded on the embedded store by `guichet serve`
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,  # admin CSV uploads; USSD has its own 4 KB cap
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
    from ussd import dial

    admin.init_app(app)  # registers /admin only when ADMIN_KEY is set
    utility_cli.init_app(app)
    vending_cli.init_app(app)
    dial.init_app(app)
    return app


def main() -> None:
    """Entry point of the `guichet` console script (Flask's CLI around create_app)."""
    cli = FlaskGroup(create_app=create_app, add_version_option=False, load_dotenv=False)
    cli.help = "Guichet: USSD + SMS self-service for utilities."
    cli.main(prog_name="guichet")


if __name__ == "__main__":
    main()

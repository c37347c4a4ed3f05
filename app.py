"""Guichet: the application factory and the `guichet` command line.

A hop flows one way: gateway adapter (ussd.gateways) -> session (state.sessions)
-> menu machine (ussd.menu) -> domain service (utility) -> journal/outbox (state) -> SMS (sms).
"""
from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from sms import DEFAULTS as SMS_DEFAULTS
from sms.catalogue import DEFAULT_LANGUAGE
from utility import operators
from utility.calls import DEFAULTS as CALL_DEFAULTS
from utility.campaigns import DEFAULTS as CAMPAIGN_DEFAULTS
from utility.console import DEFAULTS as CONSOLE_DEFAULTS
from utility.payments import DEFAULTS as PAYMENT_DEFAULTS
from utility.vending import DEFAULTS as VENDING_DEFAULTS

# Provider credentials keep the names their providers document (no GUICHET_ prefix).
PROVIDER_VARIABLES = (
    "AFRICASTALKING_USERNAME", "AFRICASTALKING_API_KEY", "AFRICASTALKING_SENDER_ID", "AFRICASTALKING_API_URL",
    "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM", "TWILIO_API_URL",
    "MTN_MOMO_BASE_URL", "MTN_MOMO_SUBSCRIPTION_KEY", "MTN_MOMO_API_USER", "MTN_MOMO_API_KEY",
    "MTN_MOMO_TARGET_ENVIRONMENT", "MTN_MOMO_CALLBACK_URL", "MTN_MOMO_CURRENCY", "MTN_MOMO_CALLBACK_IPS",
)

# Every default, each stated once: the app's own here, each package's in its DEFAULTS
# (merged below), which is also where its settings find what a mapping lacks.
DEFAULTS: dict[str, Any] = {
    "REDIS_URL": None,  # None: embedded in-process store (see state.store)
    # A move to paid waits for this many Redis replicas to have it (WAIT), at most REDIS_WAIT_MS:
    # a master failing over right after a payment then cannot lose it (utility.orders.ReplicaWait).
    "REDIS_WAIT_REPLICAS": 0,  # 0: no wait (replication stays asynchronous)
    "REDIS_WAIT_MS": 100,
    "ADMIN_KEY": None,  # the key named "admin" (utility.operators); no key at all: the /admin endpoints do not exist
    "ADMIN_KEYS": None,  # named admin keys, {"alice": "<key>", ...} or "alice:<key>,...": hashed when the app is made
    "UTILITY_NAME": "Demo Eau & Electricite",  # the utility's, never the product's: main menu title, token SMS
    "METRICS_TOKEN": None,  # None: GET /metrics answers this machine only (state.metrics)
    "TIMEZONE": "Africa/Douala",  # the utility's: the dates and times customers read, when a bill is overdue
    "DEFAULT_LANGUAGE": DEFAULT_LANGUAGE,  # the catalogues' own (fr): every text exists in it
    "SESSION_TTL": 180,  # seconds; refreshed on every hop
    "RESUME_TTL": 300,  # a dropped session can be resumed for this long
    "LOCK_TIMEOUT": 5.0,  # seconds a hop waits for another hop of its session
    # Admission control (ussd.admission): past either bound, a new dialogue gets a polite END.
    "ADMISSION_MAX_IN_FLIGHT": 0,  # hops in flight per serving process; 0: no bound
    "ADMISSION_LATENCY": 1.0,  # seconds of recent hop time per serving process; 0: no bound
    "SMS_SHORT_CODE": None,  # the number customers text (keywords, campaigns): told to them when USSD is saturated
    "SERVICE_CODES": (),  # codes after which dial-string segments are shortcuts, e.g. ["*384#"]; unset: the posted code is whole
    "DEMO_CUSTOMERS": 500,  # customers seeded on the embedded store by `guichet serve`
    # Bodies (utility.gate): every route's bound, 413 past it; callbacks keep their own tighter caps.
    "MAX_CONTENT_LENGTH": 64 * 1024,
    "MAX_UPLOAD_LENGTH": 64 * 1024 * 1024,  # the customer CSV import and campaign allow-lists
    # Requests per source address and route group, COUNT/SECONDS per serving process (utility.gate); 0: none.
    "RATE_LIMIT_USSD": "1000/1",  # above what one process serves: binds a flood, not an aggregator's rush
    "RATE_LIMIT_SMS": "500/1",  # delivery reports and inbound SMS, a few addresses per provider
    "RATE_LIMIT_PAYMENTS": "200/1",  # payment callbacks
    "RATE_LIMIT_ADMIN": "100/10",  # operators and their scripts
    # Who may call the USSD webhooks (utility.access): a secret in the callback URL and/or
    # source networks; unset: open (fine on a laptop, logged loudly).
    "CALLBACK_TOKEN": None,  # one for every gateway, or {"africastalking": "...", "hubtel": "..."}
    "GATEWAY_IPS": None,  # CIDRs, comma-separated, or per gateway as for CALLBACK_TOKEN
    "TRUSTED_PROXIES": None,  # CIDRs of reverse proxies whose X-Forwarded-For is believed
    # How often one phone may trigger an SMS or a payment prompt (state.limits: COUNT/SECONDS).
    "RESEND_LIMITS": "1/60,3/3600",  # "resend my last token"
    "ORDER_LIMITS": "3/60,10/3600",  # orders placed by one caller
    "PAYER_PROMPT_LIMITS": "3/600,10/86400",  # payment prompts to one payer's handset
    # Vending down (its breaker open, a timeout, a backend switch): "store" takes the payment
    # and sends the token when it returns; "refuse" says the purchase cannot be made now.
    "VENDING_DOWN": "store",
    "BILL_OVERPAYMENT": "credit",  # paying more than a bill: "credit" (kept on the account) or "refuse"
    "LOG_LEVEL": "INFO",  # DEBUG, INFO, WARNING, ERROR (state.logs)
    "LOG_FORMAT": "json",  # one JSON object per line; "console": the same events, readable, for development
    **VENDING_DEFAULTS,  # VENDING_BACKEND (builtin: the STS engine) or the utility's XMLVend server, STS_*...
    **SMS_DEFAULTS,  # SMS_PROVIDER (console), provider credentials, PUBLIC_URL...
    **PAYMENT_DEFAULTS,  # PAYMENT_PROVIDER (demo) or MTN MoMo Collection, the poller...
    **CAMPAIGN_DEFAULTS,  # CAMPAIGN_DELIVERY_HOURS: when an accepted registration is promised its credit
    **CALL_DEFAULTS,  # BREAKER_FAILURES, BREAKER_RESET: the breakers around vending, billing, payments
    **CONSOLE_DEFAULTS,  # CONSOLE_IDLE_TIMEOUT, CONSOLE_MAX_AGE: the operator console's sessions
}


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.from_mapping(DEFAULTS)
    # GUICHET_ADMIN_KEY -> ADMIN_KEY, ...; values that parse as JSON become numbers.
    app.config.from_prefixed_env("GUICHET")
    if os.environ.get("REDIS_URL"):
        app.config["REDIS_URL"] = os.environ["REDIS_URL"]
    for name in PROVIDER_VARIABLES:
        if os.environ.get(name):
            app.config[name] = os.environ[name]
    if test_config:
        app.config.update(test_config)
    operators.init_app(app)  # the admin keys hashed: no plain key stays in the config

    from state import logs

    logs.init_app(app)  # JSON lines, masked, a request id per request: first, so every line has them

    from state import store

    store.init_app(app)

    from state import health, metrics

    app.register_blueprint(health.bp)

    from utility import gate

    gate.init_app(app)  # request rates per source address, body bounds: before every view
    metrics.init_app(app)  # GET /metrics

    from ussd import dial
    from ussd import map as ussd_map
    from ussd import views as ussd_views
    from utility import admin, console, incidents
    from utility import cli as utility_cli
    from utility.campaigns import admin as campaign_admin
    from utility.campaigns import cli as campaign_cli
    from utility.incidents import cli as incident_cli
    from utility.vending import cli as vending_cli

    ussd_views.init_app(app)

    from sms import inbound as sms_inbound
    from sms import views as sms_views
    from utility import services
    from utility.payments import views as payment_views

    sms_views.init_app(app)  # delivery reports, `guichet sms`
    sms_inbound.init_app(app)  # inbound SMS: the keywords (sms.keywords)
    payment_views.init_app(app)  # payment callbacks
    services.init_app(app)  # final payment results go to the order pipeline
    admin.init_app(app)  # registers /admin only when ADMIN_KEY is set
    campaign_admin.init_app(app)  # /admin/campaigns, likewise
    incidents.init_app(app)  # /admin/incidents likewise, the broadcast pump, INFO by SMS
    console.init_app(app)  # /console likewise; the web phone also on the embedded store
    utility_cli.init_app(app)
    campaign_cli.init_app(app)  # `guichet campaign`
    incident_cli.init_app(app)  # `guichet incident`
    vending_cli.init_app(app)
    dial.init_app(app)
    ussd_map.init_app(app)  # `guichet menu graph`

    from state import worker

    worker.init_app(app)
    worker.add_startup_check(app, check_live_config)
    app.cli.add_command(serve_command)
    return app


@click.command("serve")
@click.option("--host", envvar="HOST", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", envvar="PORT", default=8000, show_default=True, help="Port to listen on.")
@click.option(
    "--server",
    "server_name",
    envvar="GUICHET_SERVER",
    type=click.Choice(["granian", "gunicorn"]),
    default=None,
    help="HTTP server. Default: granian with REDIS_URL, gunicorn (one process) on the embedded store.",
)
@click.option(
    "--workers",
    envvar="WEB_CONCURRENCY",
    type=int,
    default=None,
    help="Serving processes. Default: one per CPU with REDIS_URL, one on the embedded store.",
)
@click.option(
    "--threads",
    envvar="GUICHET_THREADS",
    type=int,
    default=None,
    help="Request threads per serving process. Default: 2 under granian, 16 under gunicorn.",
)
@click.option(
    "--access-log/--no-access-log",
    envvar="GUICHET_ACCESS_LOG",
    default=None,
    help="One log line per request. Default: on the embedded store only (with REDIS_URL it costs "
    "about a sixth of the hop rate; a reverse proxy's log is the place for it).",
)
@click.option("--no-worker", is_flag=True, help="Do not run the background worker in this process.")
@with_appcontext
def serve_command(
    host: str,
    port: int,
    server_name: str | None,
    workers: int | None,
    threads: int | None,
    access_log: bool | None,
    no_worker: bool,
) -> None:
    """Serve the webhooks, and the background worker beside them."""
    from state import worker
    from state.store import get_store

    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    embedded = get_store(app).embedded
    if embedded:
        if workers not in (None, 1):
            raise click.UsageError("the embedded store lives in one process: set REDIS_URL to serve with several")
        if server_name == "granian":
            raise click.UsageError("the embedded store is served by gunicorn in one process: set REDIS_URL for granian")
        workers, server_name = 1, "gunicorn"
    server_name = server_name or "granian"
    workers = workers or os.cpu_count() or 1

    worker.run_startup_checks(app)
    from ussd.views import open_warning

    if (warning := open_warning(app)) is not None:
        app.logger.warning("%s", warning)
    for line in web_pages(app, host, port):
        app.logger.info("%s", line)
    if "GUICHET_PUBLIC_URL" not in os.environ and port != 8000:
        # So the demo provider calls us back; in the environment, for granian's processes.
        os.environ["GUICHET_PUBLIC_URL"] = app.config["PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    access_log = embedded if access_log is None else access_log
    if server_name == "granian":
        serve_with_granian(app, host, port, workers, threads or 2, access_log, background=not no_worker)
    else:
        serve_with_gunicorn(app, host, port, workers, threads or 16, access_log, background=not no_worker,
                            embedded=embedded)


def web_pages(app: Flask, host: str, port: int) -> list[str]:
    """Where a person finds the console and the web phone, or why they are not there."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    base = f"http://{shown}:{port}/console"
    lines = []
    if "console.overview" in app.view_functions:
        lines.append(f"operator console: {base}/ (sign in with an admin key)")
    else:
        lines.append("operator console: off (set GUICHET_ADMIN_KEY, 16 characters or more, to have it)")
    if "phone.page" in app.view_functions:
        lines.append(f"web phone: {base}/phone/")
    return lines


def serving_app() -> Flask:
    """The app as a serving process runs it: built, then its objects frozen out of the
    cyclic garbage collector. Everything built so far (Flask, the menu machine, the
    catalogues, the clients) lives as long as the process, and a full collection walking it
    cost hops about a tenth of their CPU and put pauses in their latency tail."""
    import gc

    app = create_app()
    gc.freeze()
    return app


def serve_with_granian(
    app: Flask, host: str, port: int, workers: int, threads: int, access_log: bool, background: bool
) -> None:
    """granian's serving processes each build the app from the environment (app:create_app);
    the background worker runs here, in the process that supervises them and serves no
    request, so jobs never compete with hops for a serving process's interpreter."""
    import multiprocessing

    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    from state import worker

    # spawn: a serving process starts clean, with none of this process's threads, locks or
    # Redis connections (fork would copy them mid-use once the background worker runs).
    multiprocessing.set_start_method("spawn", force=True)
    server = Granian(
        "app:serving_app",
        factory=True,
        interface=Interfaces.WSGI,
        address=host,
        port=port,
        workers=workers,
        blocking_threads=threads,
        backlog=2048,
        respawn_failed_workers=True,
        log_level=LogLevels.info,
        log_dictconfig=granian_logging(str(app.config["LOG_FORMAT"])),
        log_access=access_log,
    )
    # As many job workers as serving processes: what gunicorn ran, one in each process.
    running = worker.start_in_thread(app, job_workers=workers) if background else None
    try:
        server.serve()
    finally:
        if running is not None:
            running.stop(timeout=5)  # hands the scheduler's lock over at once


def granian_logging(renderer: str) -> dict[str, Any]:
    """granian's own records and its access log as our lines (state.logs), on stderr like
    ours. The access log names the path only: a callback's ?token= never reaches the log."""
    formatter = {"()": "state.logs.formatter", "renderer": renderer}
    return {
        "formatters": {"generic": formatter, "access": formatter},
        "handlers": {
            "console": {"formatter": "generic", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
            "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        },
    }


def serve_with_gunicorn(
    app: Flask, host: str, port: int, workers: int, threads: int, access_log: bool, background: bool, embedded: bool
) -> None:
    """gunicorn's threads, the background worker in each serving process: what the embedded
    store needs (everything in one process) and a fallback with REDIS_URL."""
    from gunicorn.app.base import BaseApplication
    from gunicorn.glogging import Logger

    from state import logs, worker

    renderer = str(app.config["LOG_FORMAT"])

    class Lines(Logger):  # type: ignore[misc]
        """gunicorn's own records and its access log as our lines (state.logs)."""

        def _set_handler(self, log: object, output: object, fmt: object, stream: object = None) -> None:
            super()._set_handler(log, output, logs.formatter(renderer), stream)

    def post_worker_init(_worker: object) -> None:
        # Runs in each serving process (after the fork), so the embedded store and the
        # job worker's connections belong to the process that serves the requests.
        if embedded:
            seed_embedded_demo(app)
        import gc

        gc.freeze()  # see serving_app
        if background:
            worker.start_in_thread(app)  # with the periodic tasks services.init_app registered

    def worker_exit(_arbiter: object, _worker: object) -> None:
        # A graceful stop (SIGTERM, a reload) hands the scheduler's lock over at once.
        running = worker.running(app)
        if running is not None:
            running.stop(timeout=5)

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            settings = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "gthread",
                "threads": threads,
                "timeout": 30,
                # The request line without its query string: a callback's ?token= stays out.
                "accesslog": "-" if access_log else None,
                "access_log_format": '%(h)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms',
                "post_worker_init": post_worker_init,
                "worker_exit": worker_exit,
                "logger_class": Lines,
            }
            for name, value in settings.items():
                self.cfg.set(name, value)

        def load(self) -> Flask:
            return app

    Server().run()


def live_config_problems(config: Any) -> list[str]:
    """What would fail silently with real providers: each problem names its variable.

    MTN MoMo outside its sandbox needs its currency and an https callback URL
    (mtn_momo.startup_problems). Twilio is told per message where to report delivery,
    and signs its callbacks over our public URL: GUICHET_PUBLIC_URL must be set, and not
    to a loopback address it would be told to call back. (Africa's Talking takes its
    callback URLs from its dashboard, not from us.)"""
    import ipaddress
    from urllib.parse import urlsplit

    def loopback(host: str) -> bool:
        try:
            return host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    from sms import customer_messages

    problems: list[str] = customer_messages.startup_problems(config)  # UTILITY_NAME, SUPPORT_CONTACT, TIMEZONE
    problems += operators.startup_problems(config)  # admin keys too short, shared, badly named
    if config.get("PAYMENT_PROVIDER") == "mtn_momo":
        from utility.payments import mtn_momo

        problems += mtn_momo.startup_problems(config)
    if config.get("SMS_PROVIDER") == "twilio":
        public = str(config.get("PUBLIC_URL") or "")
        host = urlsplit(public).hostname or ""
        if not public:
            problems.append("GUICHET_PUBLIC_URL is not set: Twilio could not report deliveries nor sign its "
                            "callbacks over our address; set it to this server's public https URL")
        elif loopback(host):
            problems.append(f"GUICHET_PUBLIC_URL is {public}, a loopback address Twilio cannot reach")
    return problems


def check_live_config(app: Flask) -> None:
    """Refuse to start a server or worker whose configuration would fail silently."""
    problems = live_config_problems(app.config)
    if problems:
        raise click.ClickException("refusing to start:\n  " + "\n  ".join(problems))


def seed_embedded_demo(app: Flask) -> None:
    from state.store import get_redis
    from utility.customers import RedisCustomerBase
    from utility.demo import DEMO_PHONES, seed_demo

    with app.app_context():
        result = seed_demo(RedisCustomerBase(get_redis()), int(app.config["DEMO_CUSTOMERS"]))
    app.logger.warning(
        "embedded store seeded with %d demo customers; try the phones %s",
        result.imported + result.updated,
        ", ".join(DEMO_PHONES),
    )


def count_across_processes() -> None:
    """`guichet serve` runs several processes (granian's serving processes, the background
    worker in the one that supervises them): each writes its metrics' counts to files in one
    folder, which GET /metrics adds up (state.metrics). prometheus-client reads the folder's
    name when first imported, so it is chosen here, before create_app imports it: the
    operator's PROMETHEUS_MULTIPROC_DIR, else a new temporary folder. A previous run's files
    are removed: counters start again at 0 with the service, as Prometheus expects."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="guichet-metrics-")
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    # This module's imports (utility.calls) brought prometheus-client in already: its choice of
    # value store is made again, before any count is kept (every metric of state.metrics has
    # labels, and a labelled metric makes its values on first use).
    from prometheus_client import values

    values.ValueClass = values.get_value_class()


def main() -> None:
    """Entry point of the `guichet` console script (Flask's CLI around create_app)."""
    if sys.argv[1:2] == ["serve"]:
        count_across_processes()
    cli = FlaskGroup(create_app=create_app, add_version_option=False, load_dotenv=False)
    cli.help = "Guichet: USSD + SMS self-service for utilities."
    cli.main(prog_name="guichet")


if __name__ == "__main__":
    main()

"""Guichet: the application factory and the `guichet` command line.

A hop flows one way: gateway adapter (ussd.gateways) -> session (state.sessions)
-> menu machine (ussd.menu) -> domain service (utility) -> journal/outbox (state) -> SMS (sms).
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from sms import DEFAULTS as SMS_DEFAULTS
from sms.catalogue import DEFAULT_LANGUAGE
from utility.calls import DEFAULTS as CALL_DEFAULTS
from utility.campaigns import DEFAULTS as CAMPAIGN_DEFAULTS
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
    "ADMIN_KEY": None,  # None: the /admin endpoints do not exist
    "UTILITY_NAME": "Demo Eau & Electricite",  # the utility's, never the product's: main menu title, token SMS
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
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,  # admin CSV uploads; USSD has its own 4 KB cap
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
    **VENDING_DEFAULTS,  # VENDING_BACKEND (builtin: the STS engine) or the utility's XMLVend server, STS_*...
    **SMS_DEFAULTS,  # SMS_PROVIDER (console), provider credentials, PUBLIC_URL...
    **PAYMENT_DEFAULTS,  # PAYMENT_PROVIDER (demo) or MTN MoMo Collection, the poller...
    **CAMPAIGN_DEFAULTS,  # CAMPAIGN_DELIVERY_HOURS: when an accepted registration is promised its credit
    **CALL_DEFAULTS,  # BREAKER_FAILURES, BREAKER_RESET: the breakers around vending, billing, payments
}


# Control characters in what callers send (a newline in a form field, an escape sequence)
# must not reach the log raw: one would start a forged line, the other rewrite a terminal.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(text: str) -> str:
    return _CONTROL.sub(lambda m: _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


class OneLineFormatter(logging.Formatter):
    """Every record is one line that starts with its own header: the message is escaped,
    and the lines of a traceback (which may quote outside data too) are indented, so no
    value from outside can start a line that reads as a record of its own."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _escaped(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        head, *rest = super().format(record).split("\n")
        return "\n".join([head, *("    " + _escaped(line) for line in rest)])


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging() -> None:
    """INFO and up to stderr, one line per record (OneLineFormatter); once per process."""
    root = logging.getLogger()
    if root.handlers:  # ours already, or a host's (pytest, an embedding app): theirs to format
        return
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter(LOG_FORMAT))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


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
    if app.config["ADMIN_KEY"] is not None:
        app.config["ADMIN_KEY"] = str(app.config["ADMIN_KEY"])

    configure_logging()

    from state import store

    store.init_app(app)

    from state import health

    app.register_blueprint(health.bp)

    from ussd import dial
    from ussd import views as ussd_views
    from utility import admin, incidents
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
    utility_cli.init_app(app)
    campaign_cli.init_app(app)  # `guichet campaign`
    incident_cli.init_app(app)  # `guichet incident`
    vending_cli.init_app(app)
    dial.init_app(app)

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
    if "GUICHET_PUBLIC_URL" not in os.environ and port != 8000:
        # So the demo provider calls us back; in the environment, for granian's processes.
        os.environ["GUICHET_PUBLIC_URL"] = app.config["PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    access_log = embedded if access_log is None else access_log
    if server_name == "granian":
        serve_with_granian(app, host, port, workers, threads or 2, access_log, background=not no_worker)
    else:
        serve_with_gunicorn(app, host, port, workers, threads or 16, access_log, background=not no_worker,
                            embedded=embedded)


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
        log_dictconfig=GRANIAN_LOGGING,
        log_access=access_log,
    )
    # As many job workers as serving processes: what gunicorn ran, one in each process.
    running = worker.start_in_thread(app, job_workers=workers) if background else None
    try:
        server.serve()
    finally:
        if running is not None:
            running.stop(timeout=5)  # hands the scheduler's lock over at once


# granian's own records and its access log in our one-line format, on stderr like ours. The
# access log names the path only: a callback's ?token= never reaches the log.
GRANIAN_LOGGING: dict[str, Any] = {
    "formatters": {
        "generic": {"()": "app.OneLineFormatter", "fmt": "%(asctime)s %(levelname)s granian: %(message)s"},
        "access": {"()": "app.OneLineFormatter", "fmt": "%(message)s"},
    },
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

    from state import worker

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


def main() -> None:
    """Entry point of the `guichet` console script (Flask's CLI around create_app)."""
    cli = FlaskGroup(create_app=create_app, add_version_option=False, load_dotenv=False)
    cli.help = "Guichet: USSD + SMS self-service for utilities."
    cli.main(prog_name="guichet")


if __name__ == "__main__":
    main()

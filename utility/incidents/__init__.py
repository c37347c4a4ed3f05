"""Incidents: an operator declares one (model), customers of its regions are told by SMS at
each event (service: who, jobs: the broadcast on the bulk queue) and can ask by SMS (by_sms:
INFO); the USSD main menu reads the notices from the service's in-process copy. Operators
create, update, resolve and watch them (admin, cli). The customer's words are in the SMS
catalogue (sms/texts/<lang>.toml, [incident]).

This module stays light: init_app imports the rest when the app is made.
"""
from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """The admin API (when ADMIN_KEY is set), the broadcast pump beside every background
    worker (one process a round), and INFO by SMS."""
    from sms import keywords
    from state import worker
    from utility.incidents import admin, by_sms, jobs

    admin.init_app(app)
    worker.register_periodic(app, "incident-pump", jobs.PUMP_EVERY, jobs.pump)
    keywords.register(by_sms.WORD, by_sms.on_sms)

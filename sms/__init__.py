"""Outgoing SMS: text encoding (gsm), providers (client, providers/), the durable outbox
(outbox), delivery reports (views) and the customer messages (receipts, texts/)."""
from __future__ import annotations

from typing import Any

# Configuration of the SMS channel, read from GUICHET_<NAME> like the rest. Each default is
# stated here and nowhere else: app.DEFAULTS merges this mapping, and whatever reads a
# setting from a mapping that lacks it (an app not made by create_app, a test's dict)
# takes the default from here (sms.outbox.Settings, sms.providers).
DEFAULTS: dict[str, Any] = {
    # Whom the token SMS tells to call when a meter rejects a code: a phone number or a short
    # text, 17 characters at most; None: the catalogue's "votre agence" / "your local office".
    # (UTILITY_NAME and TIMEZONE, which the SMS read too, are the app's: app.DEFAULTS.)
    "SUPPORT_CONTACT": None,
    "SMS_PROVIDER": "console",  # africastalking | twilio | console | file
    "SMS_FILE": None,  # the file provider's JSON-lines file
    "SMS_TIMEOUT": 10.0,  # seconds to wait for a provider's answer
    "SMS_RATE_PER_SECOND": 10,  # messages per second to the provider, across all workers
    "SMS_BULK_SHARE": 0.5,  # the most of that rate bulk messages (campaigns, broadcasts) take: 0 < share <= 1
    "SMS_CLAIM_TIMEOUT": 60,  # seconds after which a message still "sending" is unconfirmed
    "SMS_REQUEUE_AFTER": 300,  # seconds a queued message may wait past its time before the sweep requeues it
    "SMS_SWEEP_EVERY": 60,  # seconds between two sweeps of stale messages (0: no automatic sweep)
    "SMS_RETENTION_DAYS": 30,  # how long a message (and its reference) stays in Redis
    "SMS_CALLBACK_SECRET": None,  # ?secret= expected on Africa's Talking delivery reports
    # Keyword replies per phone (sms.inbound: COUNT/SECONDS windows): each costs the utility an
    # SMS, and a forged callback must not turn the service into a way to text anyone.
    "SMS_REPLY_LIMITS": "5/60,20/3600",
    "PUBLIC_URL": None,  # https://host as the providers reach us (Twilio signatures, callbacks)
    "AFRICASTALKING_USERNAME": None,
    "AFRICASTALKING_API_KEY": None,
    "AFRICASTALKING_SENDER_ID": None,  # None: the account's default sender
    "AFRICASTALKING_API_URL": None,  # None: the SDK's own (production, or sandbox for "sandbox")
    "TWILIO_ACCOUNT_SID": None,
    "TWILIO_AUTH_TOKEN": None,
    "TWILIO_FROM": None,  # a sender number/id, or a Messaging Service SID (MG...)
    "TWILIO_API_URL": None,  # None: https://api.twilio.com
}

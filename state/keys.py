"""Every Redis key Guichet writes, in one place.

Keys are ``guichet:{tag}:name``. The part in braces is a Redis Cluster hash tag: keys
sharing a tag live in one slot, so one MULTI or pipeline can touch them together.
Everything about one phone number (its USSD sessions, lock, replay cache, resume point,
language, linked accounts) shares the phone's tag, so a hop touches one slot.
"""
from __future__ import annotations

PREFIX = "guichet"


def _key(tag: str, name: str) -> str:
    return f"{PREFIX}:{{{tag}}}:{name}"


# -- per phone number ---------------------------------------------------------------
def session(phone: str, session_id: str) -> str:
    """Hash: a USSD session's record ("session") and the answer given to each hop ("reply:<hop>").
    (Not the plain ussd:<id> of the string it replaced: a session left by an older release is
    then missing, never the wrong type.)"""
    return _key(phone, f"ussd:{session_id}:hop")


def session_lock(phone: str, session_id: str) -> str:
    return _key(phone, f"ussd:{session_id}:lock")


def resume_point(phone: str) -> str:
    return _key(phone, "resume")


def profile(phone: str) -> str:
    """Hash of what we remember about a phone number for good (its language)."""
    return _key(phone, "profile")


def phone_limit(phone: str, action: str) -> str:
    """Sorted set: when the phone last did ``action`` (state.limits)."""
    return _key(phone, f"limit:{action}")


def phone_accounts(phone: str) -> str:
    """Set of account numbers linked to a phone number."""
    return _key(phone, "accounts")


def inbound_sms(phone: str, provider: str, message_id: str) -> str:
    """String: an inbound SMS already taken ("pending", then its reply as JSON), so a provider's
    retry is answered again, never acted on twice (sms.inbound). The sender's tag: claiming
    it and reading the phone's language are one round trip."""
    return _key(phone, f"smsin:{provider}:{message_id}")


# -- customer base ------------------------------------------------------------------
def account(account_number: str) -> str:
    return _key(f"acct:{account_number}", "account")


def meter_account(meter_number: str) -> str:
    """String: the account number that owns a meter."""
    return _key(f"meter:{meter_number}", "account")


def account_digits(digits: str) -> str:
    """Set: the account numbers whose digits, read alone, are ``digits`` (what a keypad types)."""
    return _key(f"acct-digits:{digits}", "accounts")


# -- vending (built-in engine) ----------------------------------------------------------
def meter_keys(meter_number: str) -> str:
    """Hash: the STS key data installed on a meter, when it differs from the target,
    and ``blocked`` (a reason) when vending to it is stopped."""
    return _key(f"meter:{meter_number}", "sts")


def meter_month(meter_number: str, month: str) -> str:
    """Hash: units credited (in tenths) and purchases made in a calendar month (YYYY-MM)."""
    return _key(f"meter:{meter_number}", f"month:{month}")


def meter_vends(meter_number: str) -> str:
    """List: references of the meter's vends, newest first."""
    return _key(f"meter:{meter_number}", "vends")


def meter_lock(meter_number: str) -> str:
    return _key(f"meter:{meter_number}", "lock")


def vend(reference: str) -> str:
    """String: a vend's receipt (JSON), under the caller's idempotency key."""
    return _key(f"vend:{reference}", "vend")


def receipt_sequence() -> str:
    return _key("vending", "receipt-seq")


# -- SMS outbox -------------------------------------------------------------------------
def sms_message(message_id: str) -> str:
    """Hash: one outgoing SMS (recipient, body, state, provider id, attempts...)."""
    return _key(f"sms:{message_id}", "message")


def sms_reference(reference: str) -> str:
    """String: the message id sent for a caller's reference (one SMS per reference)."""
    return _key(f"smsref:{reference}", "message-id")


def sms_provider_id(provider: str, provider_id: str) -> str:
    """String: our message id for a provider's message id (delivery reports)."""
    return _key(f"smsid:{provider}:{provider_id}", "message-id")


def sms_rate(provider: str) -> str:
    """The provider's send-rate window."""
    return _key(f"smsrate:{provider}", "window")


def sms_normal_rate(provider: str) -> str:
    """The line resends and keyword replies wait in (their place kept, at the provider's rate)."""
    return _key(f"smsrate:{provider}", "normal-window")


def sms_bulk_rate(provider: str) -> str:
    """Bulk messages' (campaigns, broadcasts) own share of the provider's send rate."""
    return _key(f"smsrate:{provider}", "bulk-window")


# -- payments -----------------------------------------------------------------------------
def payment(provider: str, provider_ref: str) -> str:
    """Hash: one payment request at a provider (order, payer, amount, state, reason)."""
    return _key(f"pay:{provider}:{provider_ref}", "payment")


def provider_token(provider: str) -> str:
    """String: a provider's cached access token (OAuth), with its expiry as TTL."""
    return _key(f"pay:{provider}", "token")


# -- operator switches, orders, billing ------------------------------------------------------
def switches() -> str:
    """Hash: backend name -> "down" while an operator (or a test) has switched it off."""
    return _key("switches", "backends")


def order(reference: str) -> str:
    """String: one order (JSON), its state persisted by the order machine."""
    return _key(f"order:{reference}", "order")


def order_lock(reference: str) -> str:
    return _key(f"order:{reference}", "lock")


def waiting_orders() -> str:
    """Set: orders paid and waiting for their backend (retried at once when it returns)."""
    return _key("orders", "waiting")


def waiting_retry_lease() -> str:
    """String: held while one process queues the waiting orders again (a breaker closed: every
    process may notice it, one retries)."""
    return _key("orders", "waiting-retry")


def open_orders() -> str:
    """Sorted set: orders not final yet, scored by their last change (the order sweep
    finds those whose next step was lost: a crash, a lost job)."""
    return _key("orders", "open")


def phone_orders(phone: str) -> str:
    """List: the phone's latest order references, newest first."""
    return _key(phone, "orders")


def target_orders(target: str) -> str:
    """List: the latest order references of a meter or an account, newest first (the console's search)."""
    return _key(f"target:{target}", "orders")


def bill_payment(account_number: str, reference: str) -> str:
    """String: a bill payment posted by the built-in billing (JSON). Tagged like the
    account, so the payment and the balance change are one atomic script."""
    return _key(f"acct:{account_number}", f"bill:{reference}")


# -- campaigns -----------------------------------------------------------------------------
# Everything about one campaign shares the tag {campaign:CODE}: a registration (the one-per-
# account check, the quota, the record, the counters) is one Lua script over these keys.
def _campaign(code: str, name: str) -> str:
    return _key(f"campaign:{code}", name)


def campaign(code: str) -> str:
    """Hash: the campaign's definition (JSON), its operator state (active | paused |
    closed), when it was created, and how many numbers its allow-list holds."""
    return _campaign(code, "campaign")


def campaign_subjects(code: str) -> str:
    """Hash: "a:<account>" and "m:<meter>" -> the reference of their registration (one each)."""
    return _campaign(code, "subjects")


def campaign_records(code: str) -> str:
    """Hash: reference -> the registration (JSON: account, meter, phone, channel, lang, at)."""
    return _campaign(code, "records")


def campaign_states(code: str) -> str:
    """Hash: reference -> pending | fulfilled | failed:<reason>."""
    return _campaign(code, "states")


def campaign_order(code: str) -> str:
    """List: every reference, in the order registered (the registrations export)."""
    return _campaign(code, "order")


def campaign_pending(code: str) -> str:
    """List: references waiting for their fulfilment to be claimed."""
    return _campaign(code, "pending")


def campaign_claimed(code: str) -> str:
    """Sorted set: references being fulfilled, scored by when they are due again if their
    job never finishes them (a crash, a backend down)."""
    return _campaign(code, "claimed")


def campaign_counters(code: str) -> str:
    """Hash: registered, fulfilled, failed, refused:<reason>."""
    return _campaign(code, "counters")


def campaign_minutes(code: str) -> str:
    """Hash: "r:<minute>" registrations and "f:<minute>" fulfilments in that minute
    (minutes since the epoch)."""
    return _campaign(code, "minutes")


def campaign_allowlist(code: str) -> str:
    """Set: the account and meter numbers the campaign is restricted to (absent: no list)."""
    return _campaign(code, "allowlist")


def campaign_allowlist_draft(code: str, upload: str) -> str:
    """Set: one upload's new allow-list being written, renamed over the old one once whole
    (each upload its own, so two at once cannot mix)."""
    return _campaign(code, f"allowlist:draft:{upload}")


def campaign_retries(code: str) -> str:
    """Hash: reference -> how often its fulfilment was put off because a backend could not
    serve it (its backoff grows with it: utility.campaigns.jobs)."""
    return _campaign(code, "retries")


def campaign_units(code: str) -> str:
    """Hash: reference -> units decided for an XAF benefit on a prepaid meter (the first
    quote wins, so a retry next month asks the vending backend for the same free issue)."""
    return _campaign(code, "units")


def campaigns() -> str:
    """Set: every campaign code."""
    return _key("campaigns", "codes")


# -- incidents -----------------------------------------------------------------------------
# Everything about one incident shares the tag {incident:ID}: its record and, per event
# (created, update-N, resolved), its broadcast's record, recipients, line, claims and the
# messages not settled yet, so each step of a broadcast is one script over these keys.
# ``region`` below is the key form of a region (utility.customers.region_key).
def _incident(incident_id: str, name: str) -> str:
    return _key(f"incident:{incident_id}", name)


def incident(incident_id: str) -> str:
    """Hash: the incident's definition (JSON), status (active | resolved), created_at,
    updated_at, resolved_at, and how many updates it had."""
    return _incident(incident_id, "incident")


def incident_broadcast(incident_id: str, event: str) -> str:
    """Hash: one event's broadcast: its state (selecting | sending | done | superseded), the
    bodies per language, where the selection stands, its counters and per-minute sends."""
    return _incident(incident_id, f"broadcast:{event}")


def incident_recipients(incident_id: str, event: str) -> str:
    """Set: every phone chosen for the event's broadcast (each once: the dedupe)."""
    return _incident(incident_id, f"broadcast:{event}:recipients")


def incident_pending(incident_id: str, event: str) -> str:
    """List: phones chosen and not yet handed to a job."""
    return _incident(incident_id, f"broadcast:{event}:pending")


def incident_claimed(incident_id: str, event: str) -> str:
    """Sorted set: phones handed to a job, scored by when they are due again if no job
    finishes them (a crash)."""
    return _incident(incident_id, f"broadcast:{event}:claimed")


def incident_unsettled(incident_id: str, event: str) -> str:
    """Sorted set: outbox message ids queued and not yet sent or failed, scored by when to
    look at them again."""
    return _incident(incident_id, f"broadcast:{event}:unsettled")


def incidents() -> str:
    """Set: every incident id."""
    return _key("incidents", "ids")


def incident_broadcasts() -> str:
    """Sorted set: "<id>/<event>" of the broadcasts under way, scored by when they began."""
    return _key("incidents", "broadcasts")


def region_phones(region: str) -> str:
    """Set: the phones with an account in the region (utility.customers keeps it)."""
    return _key(f"region:{region}", "phones")


def region_subscribers(region: str) -> str:
    """Set: the phones that asked for the region's notices without an account there."""
    return _key(f"region:{region}", "subscribers")


def regions() -> str:
    """Hash: region key -> the region's name as the customer file writes it."""
    return _key("regions", "names")


def phone_regions(phone: str) -> str:
    """Hash: account number -> region, of the accounts linked to the phone (the profile's
    ``regions`` field is derived from it)."""
    return _key(phone, "regions")


def phone_subscriptions(phone: str) -> str:
    """Set: the region keys whose notices the phone subscribed to."""
    return _key(phone, "subscriptions")


def late_payments(month: str) -> str:
    """Sorted set: bill payments made on or after their bill's due date in a month (YYYY-MM,
    UTC), scored by when they were paid; a tag per month, so each month's key expires alone."""
    return _key(f"late-payments:{month}", "payments")


# -- outside calls -------------------------------------------------------------------------
def breaker(system: str) -> str:
    """The namespace of an outside system's circuit breaker (utility.calls): pybreaker's
    CircuitRedisStorage appends ``:pybreaker:state``, ``:pybreaker:fail_counter``,
    ``:pybreaker:success_counter`` and ``:pybreaker:opened_at``, all under one tag."""
    return _key(f"breaker:{system}", "circuit")


def service_switches() -> str:
    """Hash: customer-facing service (buy, bill, campaigns) -> JSON {enabled, message, at}
    while an operator has switched it off (state.switches); absent: on."""
    return _key("switches", "services")


# -- background work ---------------------------------------------------------------------
def background_lease(task: str) -> str:
    """String: held by the process running a periodic task's current round."""
    return _key("background", f"lease:{task}")


def outage_retries() -> str:
    """Set: ids of jobs that failed only because Redis was away, waiting for their retry
    (run at once when Redis answers again, see state.worker.note_recovery)."""
    return _key("background", "outage-retries")


# -- figures ------------------------------------------------------------------------
def screen_figures(day: str) -> str:
    """Hash: "<screen>:hops", "<screen>:drop_offs" and "<screen>:invalid" -> that UTC day's
    count (YYYY-MM-DD), added to by every serving process (ussd.figures). The console's
    tag (``tally``): state.tally writes it with the other figures, in one pipeline."""
    return _key("tally", f"screens:{day}")


# -- streams ------------------------------------------------------------------------
def journal() -> str:
    """Stream of every state change (sessions now; orders, campaigns later)."""
    return _key("journal", "events")


def audit() -> str:
    """Stream of every admin action."""
    return _key("audit", "admin")


# -- the operator console ------------------------------------------------------------
def console_session(session_id: str) -> str:
    """Hash: a signed-in operator's console session (who, csrf, lang, started); expires
    when idle (utility.console.auth). Its own tag: one small key per operator."""
    return _key(f"console:{session_id}", "session")


def tally(name: str) -> str:
    """The console's figures (state.tally): ``hops:<day>``, ``sessions:<minute>``, ``sms:<day>``,
    ``orders:<day>``; one tag, so one pipeline writes a process's sums."""
    return _key("tally", name)


def failed_orders() -> str:
    """List: the latest orders that ended failed, newest first (the console shows them first)."""
    return _key("orders", "failed")

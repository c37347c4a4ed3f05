"""Inbound SMS: `POST /sms/africastalking/inbound` and `POST /sms/twilio/inbound`; and
Africa's Talking's bulk SMS opt-out notification, `POST /sms/africastalking/optout`.

Each provider parses its own callback (``parse_inbound`` in sms/providers/<name>.py) into
a keywords.Inbound; sms.keywords finds the keyword and its reply. The rest is the same:

- Who may call, as for the delivery reports (sms.views): Africa's Talking's callbacks carry
  ``?secret=`` when SMS_CALLBACK_SECRET is set; Twilio's are signed (X-Twilio-Signature over
  PUBLIC_URL), and refused outright while TWILIO_AUTH_TOKEN is unset: an unsigned callback
  could pose as any phone, and nothing on our side needs one.
- Once per message: the provider's id is claimed in Redis (SET NX, keys.inbound_sms) before
  anything is done, and the reply is kept under it for SEEN_TTL. A retried callback gets
  the same reply and acts on nothing; nor is it journaled again.
- The reply: Africa's Talking's goes through the outbox under the reference
  "inbound:<provider>:<id>" (kind keyword_reply), so a retry that queues it again still
  sends one SMS; Twilio's is the TwiML of the HTTP answer, an empty <Response/> when there
  is nothing to say.
- Every message handled is journaled ("sms.inbound": keyword, outcome, language); logs
  mask the phone.
- A malformed callback gets 400 and its one-line reason; nothing a provider sends gives a
  5xx (but an opt-out, below). With Redis away nothing can be claimed nor queued: Africa's
  Talking gets its 200 and the message is lost, logged (as a delivery report would be);
  Twilio's sender is told, in the TwiML, to try again later.
- An opt-out notification (Africa's Talking: senderId, phoneNumber) stops notices to that
  phone (sms.optout, source "africastalking"), checked as the inbound callback is
  (``?secret=``). A retry changes nothing and gets its 200. With Redis away it gets a 503,
  unlike a message: the customer was told by Africa's Talking that it is done and will not
  ask again, so a retry of the notification is the only chance it is not lost.
"""
from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from flask import Blueprint, Flask, Response, current_app, request
from twilio.twiml.messaging_response import MessagingResponse

from sms import DEFAULTS, keywords, optout, outbox, views
from sms.keywords import Inbound, MalformedInbound
from state import journal, keys, limits
from state.store import get_redis
from utility.customers import mask_phone

log = logging.getLogger(__name__)

bp = Blueprint("sms_inbound", __name__, url_prefix="/sms")

# Octets of a callback: 1,600 characters of text form-encoded (up to 9 octets each, for a
# character outside Latin-1) and the other fields. More is not a provider's callback.
MAX_BODY = 16 * 1024
# Seconds a message id is remembered with its reply. Providers retry within minutes; a
# week also covers a backlog replayed after an outage of ours.
SEEN_TTL = 7 * 86400
# Seconds a claim lives while its message is being handled. Short, so that a process dying
# mid-message lets the provider's retry try again rather than be ignored for a week; long
# beside a handler's work (a few Redis calls) and the 15 s a provider waits for us.
PENDING_TTL = 60
PENDING = "pending"
REPLY_KIND = "keyword_reply"


def _plain(text: str = "", status: int = 200) -> Response:
    return Response(text + ("\n" if text else ""), status=status, mimetype="text/plain")


@dataclass(frozen=True)
class Handled:
    reply: str | None  # None: nothing to say (or a retry that came while the first was still at work)
    first: bool  # False: a retry of a message handled before; nothing was done again


def handle(message: Inbound) -> Handled:
    """Answer ``message`` once: claim its id, read the keyword, run its handler, keep and
    journal the reply. A retry gets the kept reply. Raises redis.RedisError."""
    r = get_redis()
    seen = keys.inbound_sms(message.phone, message.provider, message.message_id)
    with r.pipeline() as pipe:  # one round trip in the phone's slot: claim the id, read the phone's language
        pipe.set(seen, PENDING, nx=True, ex=PENDING_TTL)
        pipe.get(seen)
        pipe.hget(keys.profile(message.phone), "lang")
        claimed, stored, phone_lang = pipe.execute()
    if not claimed:
        reply = _kept_reply(stored)
        log.info("inbound sms %s %s from %s again: %s", message.provider, message.message_id,
                 mask_phone(message.phone), "answered as before" if stored != PENDING else "still being handled")
        return Handled(reply, first=False)
    message, keyword = keywords.read(message, phone_lang, str(current_app.config["DEFAULT_LANGUAGE"]))
    try:
        limits.take(r, message.phone, "sms_reply", current_app.extensions[REPLY_LIMITS])
    except limits.LimitReached:
        # Acted on and answered no more for now: neither a registration nor a reply. Only a
        # keyword that must always be heeded (STOP) still acts, and says nothing.
        if keyword is not None and keyword.always:
            keywords.answer(message, keyword)
        answer = keywords.Answer("limited", None)
    else:
        answer = keywords.answer(message, keyword)
    with r.pipeline(transaction=False) as pipe:  # not a MULTI: the journal is its own slot
        pipe.set(seen, json.dumps({"reply": answer.reply}), ex=SEEN_TTL)
        journal.append(
            pipe, "sms.inbound", provider=message.provider, message=message.message_id, phone=message.phone,
            to=message.to, keyword=message.keyword, outcome=answer.outcome, lang=message.lang,
            text=message.text[:keywords.MAX_FIELD],
        )
        pipe.execute()
    log.info("inbound sms %s %s from %s: %s %s", message.provider, message.message_id, mask_phone(message.phone),
             message.keyword or "(empty)", answer.outcome)
    return Handled(answer.reply, first=True)


def _kept_reply(stored: str | None) -> str | None:
    if not stored or stored == PENDING:
        return None
    reply = json.loads(stored).get("reply")
    return reply if isinstance(reply, str) else None


def _received(provider: str, refusal: Callable[[], Response | None], parser: str = "parse_inbound") -> Any:
    """What this request carries, parsed by its provider's ``parser`` (an Inbound for
    parse_inbound); or the Response refusing it (a body too big, a callback not from the
    provider, a malformed one)."""
    if (request.content_length or 0) > MAX_BODY:
        return _plain(f"body over {MAX_BODY} octets", 400)
    if (refused := refusal()) is not None:
        return refused
    # Imported here: a deployment loads a provider's SDK only when it uses it.
    parse = getattr(importlib.import_module(f"sms.providers.{provider}"), parser)
    try:
        return parse(request.form)
    except MalformedInbound as exc:
        return _plain(str(exc), 400)


@bp.post("/africastalking/inbound")
def africastalking_inbound() -> Response:
    message: Inbound | Response = _received("africastalking", views.africastalking_refusal)
    if isinstance(message, Response):
        return message
    try:
        handled = handle(message)
        if handled.reply is not None:
            # On a retry too: the reference makes it one SMS whatever happens, and this
            # queues it if the first callback died between handling and queueing.
            outbox.send(None, message.phone, handled.reply, reference=f"inbound:{message.provider}:{message.message_id}",
                        kind=REPLY_KIND)
    except redis.RedisError:
        log.exception("inbound sms %s from %s lost: Redis is unavailable", message.message_id, mask_phone(message.phone))
    return _plain()


@bp.post("/africastalking/optout")
def africastalking_optout() -> Response:
    notice: optout.ProviderOptOut | Response = _received("africastalking", views.africastalking_refusal,
                                                         "parse_optout")
    if isinstance(notice, Response):
        return notice
    try:
        changed = optout.set_notices(get_redis(), notice.phone, allowed=False, source=notice.provider,
                                     via=notice.sender_id)
    except redis.RedisError:
        log.exception("opt-out of %s from %s not recorded: Redis is unavailable", mask_phone(notice.phone),
                      notice.sender_id)
        return _plain("cannot record it now, try again", 503)
    log.info("opt-out of %s from %s (%s): %s", mask_phone(notice.phone), notice.sender_id, notice.provider,
             "notices stopped" if changed else "already stopped")
    return _plain()


@bp.post("/twilio/inbound")
def twilio_inbound() -> Response:
    message: Inbound | Response = _received("twilio", lambda: views.twilio_refusal(required=True))
    if isinstance(message, Response):
        return message
    try:
        reply = handle(message).reply
    except redis.RedisError:
        log.exception("inbound sms %s from %s not handled: Redis is unavailable", message.message_id,
                      mask_phone(message.phone))
        reply = keywords.unavailable(keywords.reply_language(str(current_app.config["DEFAULT_LANGUAGE"])))
    return twiml(reply)


def twiml(reply: str | None) -> Response:
    """Twilio's answer: the reply as a message, or an empty <Response/> (Twilio sends nothing)."""
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return Response(str(response), mimetype="text/xml")


REPLY_LIMITS = "guichet.sms.reply_limits"  # app.extensions: SMS_REPLY_LIMITS, parsed once


def init_app(app: Flask) -> None:
    """Register the inbound SMS endpoints."""
    app.extensions[REPLY_LIMITS] = limits.parse(app.config.get("SMS_REPLY_LIMITS", DEFAULTS["SMS_REPLY_LIMITS"]))
    if bp.name not in app.blueprints:  # idempotent, as sms.views.init_app
        app.register_blueprint(bp)

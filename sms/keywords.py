"""Inbound SMS keywords: the one registry every SMS self-service lands in.

A customer texts a keyword, perhaps followed by an argument ("GRATUIT 01400000012",
"aide"). The text is read leniently: spaces collapsed, case and accents ignored ("arrêt"
is ARRET); its first word is the keyword, the rest its argument. The keyword is found

1. in KEYWORDS, the static ones, one line each. A domain module outside sms/ adds its own
   with `register(word, handler)` from its init_app, so the import goes one way (the
   domain imports sms, never the reverse: sms.customer_messages already imports utility);
2. else by asking the resolvers given to `register_resolver(resolve)`, for keywords that
   exist while something does (a campaign's code while the campaign runs).

Static keywords win, so no campaign named AIDE can take the help away.

A handler gets an `Inbound` and returns its reply's text, or None to say nothing. It runs
in the request's app context (current_app, state.store.get_redis()), once per message
(sms.inbound remembers the provider's id). Its reply is made GSM-7 and cut to one segment
here if it is not: a keyword's answer costs the utility one SMS, never three. The reply's
language (Inbound.lang) is the phone's remembered one (chosen on the USSD language screen),
else the keyword's own (HELP is English), else the app's default (French).

Text that matches no keyword gets a one-line help listing what works. Each provider parses
its own callback (``parse_inbound`` in sms/providers/<name>.py) with `received()`, which
holds the checks every provider's callback gets.
"""
from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from sms.catalogue import DEFAULT_LANGUAGE
from sms.gsm import clip, gsm7_septets, to_gsm7
from sms.optout import start_reply, stop_reply
from sms.receipts import MESSAGES
from utility.customers import mask_phone
from utility.phones import is_e164

log = logging.getLogger(__name__)

MAX_TEXT = 1600  # characters: more than ten concatenated segments is no SMS a phone sends
MAX_FIELD = 200  # characters of a provider's message id or of our number
REPLY_SEPTETS = 160  # one GSM-7 segment
# Punctuation a customer may stick to the keyword ("Aide?", "STOP.") without meaning it.
_EDGES = ".,;:!?'\"()"


# -- the message ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Inbound:
    """One SMS a customer sent us: as its provider reported it, then as we read it."""

    provider: str  # "africastalking", "twilio"
    message_id: str  # the provider's id: a retried callback carries the same one
    phone: str  # the sender, E.164
    to: str  # our number or short code it was sent to
    text: str  # as typed
    keyword: str = ""  # the first word, folded ("ARRET"); "" for an empty SMS
    argument: str = ""  # the rest, spaces collapsed, case kept ("GA-1000005")
    lang: str = DEFAULT_LANGUAGE  # the reply's language


class MalformedInbound(ValueError):
    """A provider's callback (an inbound SMS, an opt-out) that is not what it should be; its
    message is the 400's one-line reason."""


def given(form: Mapping[str, str], name: str) -> str:
    """Field ``name`` of a provider's callback, present and of a sane length, else MalformedInbound."""
    value = (form.get(name) or "").strip()
    if not value:
        raise MalformedInbound(f"missing field: {name}")
    if len(value) > MAX_FIELD:
        raise MalformedInbound(f"{name} over {MAX_FIELD} characters")
    return value


def given_phone(form: Mapping[str, str], name: str) -> str:
    """Field ``name``, a phone number in E.164 (the one check: utility.phones), else MalformedInbound."""
    value = given(form, name)
    if not is_e164(value):
        raise MalformedInbound(f"{name} is not a phone number (E.164, e.g. +237699000001)")
    return value


def received(provider: str, form: Mapping[str, str], *, message_id: str, phone: str, to: str, text: str) -> Inbound:
    """The Inbound in a provider's callback ``form``, given the provider's names of its four
    fields: each provider names them its own way, the rules (and the 400 reasons, naming
    the field) are the same. The text may be empty (a blank SMS gets the help), never absent."""
    ident = given(form, message_id)
    sender = given_phone(form, phone)
    ours = given(form, to)
    body = form.get(text)
    if body is None:
        raise MalformedInbound(f"missing field: {text}")
    if len(body) > MAX_TEXT:
        raise MalformedInbound(f"{text} over {MAX_TEXT} characters")
    return Inbound(provider, ident, sender, ours, body)


def fold(word: str) -> str:
    """``word`` in capitals without accents: "arrêt", "Arret" and "ARRÊT" are all "ARRET"."""
    decomposed = unicodedata.normalize("NFKD", word)  # also makes fullwidth letters plain
    return "".join(char for char in decomposed if not unicodedata.combining(char)).upper()


def split(text: str) -> tuple[str, str]:
    """(keyword, argument) of what a customer typed: "  gratuit   123 " -> ("GRATUIT", "123")."""
    words = text.split()  # any run of whitespace: non-breaking spaces and newlines too
    if not words:
        return "", ""
    return fold(words[0]).strip(_EDGES), " ".join(words[1:])


# -- the registry -----------------------------------------------------------------------------
Handler = Callable[[Inbound], str | None]


@dataclass(frozen=True)
class Keyword:
    handler: Handler
    lang: str | None = None  # the language the word is in (HELP: "en"); None: any (STOP, a campaign's code)
    usage: str = ""  # what follows the word, a key of [inbound.usage] ("meter_or_account"), for the help
    # Acted on even past the phone's reply limit, only its reply withheld (sms.inbound): a
    # customer's STOP is heeded however much they texted before it, and acting costs nothing.
    always: bool = False


@dataclass(frozen=True)
class Resolver:
    resolve: Callable[[str], Handler | None]  # a folded word -> its handler, or None
    words: Callable[[], Iterable[str]] | None = None  # the words it answers now, for the help
    usage: str = ""  # what follows each of its words, as for Keyword


def help_reply(message: Inbound) -> str:
    """AIDE / HELP: what works, in one segment."""
    return listing(message.lang, "inbound.help")


# The static keywords, one line each; a domain's come through register() from its module
# (SOLDE / BAL and JETON / TOKEN: utility.by_sms). The help lists them in this order, then
# the registered ones, then the resolvers' words.
KEYWORDS: dict[str, Keyword] = {
    "AIDE": Keyword(help_reply, "fr"),
    "HELP": Keyword(help_reply, "en"),
    "ARRET": Keyword(stop_reply, "fr", always=True),  # notices (sms.optout); receipts still go
    "STOP": Keyword(stop_reply, always=True),  # any language: the word every operator's opt-out teaches
    "START": Keyword(start_reply, always=True),
}
RESOLVERS: list[Resolver] = []


def register(word: str, handler: Handler, *, lang: str | None = None, usage: str = "") -> None:
    """Make ``word`` (folded: "arrêt" is ARRET) a keyword answered by ``handler``.

    Registering the same again is a no-op (create_app runs once per app, tests make many:
    pass a module-level function, not a closure made anew per app, so it compares equal);
    another handler for a word already taken is a ValueError, not a silent takeover."""
    key = fold(word.strip()).strip(_EDGES)
    if not key or len(key.split()) != 1:
        raise ValueError(f"a keyword is one word: {word!r}")
    keyword = Keyword(handler, lang, usage)
    if KEYWORDS.get(key, keyword) != keyword:
        raise ValueError(f"keyword {key} is already registered to another handler")
    KEYWORDS[key] = keyword


def register_resolver(
    resolve: Callable[[str], Handler | None], *, words: Callable[[], Iterable[str]] | None = None, usage: str = "",
) -> None:
    """Ask ``resolve(word)`` for a handler when ``word`` (folded, e.g. "GRATUIT") is no static
    keyword. ``words()``, if given, names the words it answers now, for the help; ``usage`` is
    what follows them (a key of [inbound.usage]). Registering ``resolve`` again replaces it."""
    RESOLVERS[:] = [resolver for resolver in RESOLVERS if resolver.resolve != resolve]
    RESOLVERS.append(Resolver(resolve, words, usage))


def find(word: str) -> Keyword | None:
    """The keyword ``word`` (folded) is, or None."""
    if word in KEYWORDS:
        return KEYWORDS[word]
    for resolver in RESOLVERS:
        handler = resolver.resolve(word)
        if handler is not None:
            return Keyword(handler, usage=resolver.usage)
    return None


# -- reading a message and answering it --------------------------------------------------------
def reply_language(*choices: str | None) -> str:
    """The first of ``choices`` the SMS catalogue has (else its default)."""
    for lang in choices:
        if lang in MESSAGES.languages:
            return lang
    return MESSAGES.default


def read(message: Inbound, phone_lang: str | None, default_lang: str) -> tuple[Inbound, Keyword | None]:
    """``message`` with its keyword, argument and reply language; and the keyword it is
    (None: text that matches none)."""
    word, argument = split(message.text)
    keyword = find(word) if word else None
    lang = reply_language(phone_lang, keyword.lang if keyword else None, default_lang)
    return replace(message, keyword=word, argument=argument, lang=lang), keyword


@dataclass(frozen=True)
class Answer:
    outcome: str  # replied | silent (the handler had nothing to say) | unknown (the help went back) | failed
    # | limited (the phone sent too many: nothing done, nothing said)
    reply: str | None  # one GSM-7 segment, or None


def answer(message: Inbound, keyword: Keyword | None) -> Answer:
    """What to reply to ``message`` (read by `read`), running its keyword's handler."""
    if keyword is None:
        return Answer("unknown", listing(message.lang, "inbound.unknown"))
    try:
        reply = keyword.handler(message)
    except Exception:  # a domain's bug or outage: the customer hears so, the provider gets no 5xx
        log.exception("keyword %s from %s failed", message.keyword, mask_phone(message.phone))
        return Answer("failed", unavailable(message.lang))
    if reply is None or not reply.strip():
        return Answer("silent", None)
    return Answer("replied", one_segment(reply, message.keyword))


def unavailable(lang: str) -> str:
    """The reply when the service cannot answer now."""
    return MESSAGES.text(lang, "inbound.unavailable")


def one_segment(reply: str, keyword: str) -> str:
    """``reply`` as one GSM-7 segment. A handler's odd character or long text is fixed here,
    and logged (without the text: it may hold a number) for its owner to fix."""
    fixed = clip(to_gsm7(reply), REPLY_SEPTETS)
    if fixed != reply:
        log.warning("reply to %s was not one GSM-7 segment (%d characters): spelled in GSM-7 and cut",
                    keyword, len(reply))
    return fixed


def available(lang: str) -> list[str]:
    """What works, as the help lists it in ``lang``: each keyword in that language or in any,
    with what follows it ("GRATUIT <compteur ou compte>"). A word whose handler is listed
    already is a synonym and left out (French lists ARRET, not STOP as well): the one
    segment has room for what does something else."""
    entries: list[str] = []
    listed: list[Handler] = []
    for word, keyword in KEYWORDS.items():
        if keyword.lang in (None, lang) and keyword.handler not in listed:
            entries.append(_entry(word, keyword.usage, lang))
            listed.append(keyword.handler)
    for resolver in RESOLVERS:
        if resolver.words is None:
            continue
        try:
            words = [fold(to_gsm7(word.strip())) for word in resolver.words()]
        except Exception:  # the help still goes out, without the words a failing domain would add
            log.exception("keyword resolver %r could not list its words", resolver.resolve)
            continue
        entries += [_entry(word, resolver.usage, lang) for word in words if word and word not in KEYWORDS]
    return entries


def _entry(word: str, usage: str, lang: str) -> str:
    return f"{word} {MESSAGES.text(lang, f'inbound.usage.{usage}')}" if usage else word


def listing(lang: str, key: str) -> str:
    """The text ``key`` (with {keywords}) listing what works, within one segment: entries that
    would not fit are left out, and ", ..." says so."""
    entries = available(lang)
    reply = MESSAGES.text(lang, key, keywords=", ".join(entries))
    while entries and (gsm7_septets(reply) or REPLY_SEPTETS + 1) > REPLY_SEPTETS:
        entries.pop()
        reply = MESSAGES.text(lang, key, keywords=", ".join([*entries, "..."]))
    return reply

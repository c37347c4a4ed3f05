"""One USSD hop, end to end: lock the session, replay or restore it, apply the new
inputs through the menu machine, save, and answer.

A hop is idempotent: the answer given to each (session, hop) is kept, so a gateway's
retry gets the same screen and nothing is done twice. Redis outages and lock
contention become polite END screens, never errors the gateway would show as a crash.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from state import metrics
from state.sessions import Change, Held, Loaded, Session, SessionBusy, SessionStore
from ussd import menu
from ussd.catalogue import languages, text
from ussd.flows import SCREENS
from ussd.flows.home import notice_line
from ussd.gateways.base import Hop
from ussd.render import render
from ussd.screens import Context, Screen
from utility.customers import mask_phone
from utility.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Settings:
    utility: str  # UTILITY_NAME
    default_language: str  # DEFAULT_LANGUAGE


# (screen shown, screens an input was refused on): in memory, the hop cannot spare a round trip
CountScreens = Callable[[str, Sequence[str]], None]


class Engine:
    def __init__(self, store: SessionStore, services: Services, settings: Settings,
                 count_screens: CountScreens = lambda shown, refused: None) -> None:
        self.store = store
        self.services = services
        self.settings = settings
        self.count_screens = count_screens  # the menu map's figures (ussd.figures)

    def answer(self, hop: Hop) -> Screen:
        try:
            with self.store.hop(hop.phone, hop.session_id, hop.hop_key, hop.opening) as held:
                return self._answer(hop, held)
        except SessionBusy:
            log.warning("session %s of %s busy: hop refused", hop.session_id, mask_phone(hop.phone))
            metrics.hop(hop.gateway, "", "busy")
            return Screen(text(self.settings.default_language, "end.busy"), end=True)
        except redis.RedisError:
            log.exception("redis unavailable: hop of %s refused", mask_phone(hop.phone))
            metrics.hop(hop.gateway, "", "down")
            return Screen(text(self.settings.default_language, "end.down"), end=True)

    def _answer(self, hop: Hop, held: Held) -> Screen:
        loaded = held.loaded
        if loaded.reply is not None:
            metrics.hop(hop.gateway, "", "replayed")  # a gateway's retry: answered as before
            return Screen.from_cache(loaded.reply)
        if loaded.session is None:
            metrics.session("started")
        session, inputs = self._session_and_inputs(hop, loaded)
        outcome = menu.run(session, inputs, self.services)
        screen = render(session, Context(self.settings.utility, hop.service_code, self.services.now().date(),
                                         self.services, banner=notice_line(session, self.services)))
        session.hint = session.notice = ""  # shown once
        self.store.save(
            Change(
                session=session,
                hop_key=hop.hop_key,
                reply=screen.to_cache(),
                transitions=outcome.moves,
                journal=outcome.journal,
                remember_language=outcome.language_changed,
                resumable=not screen.end and SCREENS[session.state].resumable,
            ),
            held,
        )
        metrics.hop(hop.gateway, session.state, "end" if screen.end else "continue")
        self.count_screens(session.state, outcome.refused)
        return screen

    def _session_and_inputs(self, hop: Hop, loaded: Loaded) -> tuple[Session, list[str]]:
        session = loaded.session
        if session is not None:
            if not hop.cumulative:
                return session, list(hop.inputs)
            # Only what follows the inputs already taken is new; a shorter text is a
            # late or reordered hop: show the current screen again, act on nothing.
            new = list(hop.inputs[session.consumed :])
            session.consumed = max(session.consumed, len(hop.inputs))
            return session, new
        language = loaded.language if loaded.language in languages() else self.settings.default_language
        session = Session(
            session_id=hop.session_id,
            phone=hop.phone,
            gateway=hop.gateway,
            service_code=hop.service_code,
            network=hop.network,
            lang=language,
            resume_kept=loaded.resume is not None,
            regions=loaded.regions,
        )
        inputs = list(hop.dial_inputs) + list(hop.inputs)
        session.consumed = len(hop.inputs) if hop.cumulative else 0
        point = loaded.resume
        if not inputs and point and point.session_id != hop.session_id and point.state in SCREENS:
            session.state = "resume"
            session.data["resume"] = {"state": point.state, "history": point.history, "data": point.data}
        return session, inputs

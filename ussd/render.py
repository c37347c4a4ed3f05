"""Rendering: a session on a screen becomes the text the customer reads, in the session's
language, within one USSD screen (sms.gsm): 182 GSM-7 septets, 80 characters otherwise.

Lists paginate (`98` for more) with pages packed against the worst case, so they stay the
same from hop to hop; so does a long text on an info screen (ScreenSpec.paged), split at
word boundaries. A screen too long for the data at hand drops its Spare lines first.
"""
from __future__ import annotations

from sms.gsm import USSD_GSM7_LIMIT, clip, fits_screen, gsm7_septets, to_gsm7
from state.sessions import Session
from ussd.catalogue import text
from ussd.flows import SCREENS
from ussd.screens import TITLE_WIDTH, TOP_LEVEL, Context, Option, Screen, ScreenSpec, Spare
from utility.services import Services

# What may stand above any list or paged text: a refused choice, no further page; each list
# adds its pick_hints (the fit test renders every list with each of them).
LIST_HINTS = ("hint.choice", "hint.no_more", "hint.at_home")


def _septets(lines: list[str]) -> int:
    return gsm7_septets("\n".join(lines)) or 0


def _nav(session: Session) -> list[str]:
    if session.state in TOP_LEVEL:
        return []
    return [text(session.lang, "nav.back"), text(session.lang, "nav.home")]


def _longest_head(lang: str, spec: ScreenSpec) -> str:
    return max((text(lang, key) for key in LIST_HINTS + spec.pick_hints), key=len)


def _item_lines(session: Session, spec: ScreenSpec) -> list[str]:
    assert spec.label is not None, f"list screen {session.state} has no label"
    label, lang = spec.label, session.lang
    return [f"{n}. {label(lang, item)}" for n, item in enumerate(session.data[spec.items], 1)]


def list_pages(session: Session) -> list[list[int]]:
    """The item indexes on each page of a list screen.

    Pages are packed greedily against the worst case (a hint, a "more" line), so they stay
    the same from hop to hop whatever the customer typed.
    """
    return _pages(session, _item_lines(session, SCREENS[session.state]))


def _pages(session: Session, item_lines: list[str]) -> list[list[int]]:
    spec = SCREENS[session.state]
    lang = session.lang
    fixed = [_longest_head(lang, spec), text(lang, spec.title), text(lang, "nav.more"), *_extra_lines(session),
             *_nav(session)]
    budget = USSD_GSM7_LIMIT - _septets(fixed) - 1  # -1: the newline before the items
    pages: list[list[int]] = [[]]
    used = 0
    for index, line in enumerate(item_lines):
        cost = _septets([line]) + 1
        if pages[-1] and used + cost > budget:
            pages.append([])
            used = 0
        pages[-1].append(index)
        used += cost
    return pages


def _extra_lines(session: Session) -> list[str]:
    spec = SCREENS[session.state]
    first = len(session.data[spec.items]) + 1
    return [f"{first + n}. {text(session.lang, option.label)}" for n, option in enumerate(spec.extra)]


def offered(spec: ScreenSpec, session: Session, services: Services | None) -> tuple[Option, ...]:
    """The options of a menu screen (or the extras of an input screen) this session is
    offered, numbered in this order."""
    options = spec.extra if spec.kind == "input" else spec.options
    return tuple(option for option in options
                 if option.when is None or (services is not None and option.when(session, services)))


def current_page(session: Session) -> int:
    return int(session.data.get("pages", {}).get(session.state, 0))


def text_pages(session: Session) -> list[str]:
    """The pages of a paged info screen's text (ScreenSpec.paged), each within one screen
    with the worst hint above it and the "more" and navigation lines under it.

    A line that fits one page is never split (it starts the next page when the rest of this
    one is too short: a title, an expected end stay whole); a longer one is split at word
    boundaries (a word longer than a page is cut). The text is kept in the session, so its
    pages stay the same from hop to hop."""
    spec = SCREENS[session.state]
    lang = session.lang
    fixed = [_longest_head(lang, spec), text(lang, "nav.more"), *_nav(session)]
    budget = USSD_GSM7_LIMIT - _septets(fixed) - 1  # -1: the newline between the text and the lines under it
    pages: list[str] = []
    page = ""
    for line in str(session.data[spec.paged]).splitlines():
        line = " ".join(line.split())
        if not line:
            continue
        if _septets([page, line] if page else [line]) <= budget:
            page = f"{page}\n{line}" if page else line
            continue
        if _septets([line]) <= budget:
            pages.append(page)
            page = line
        else:
            page = _split_line(line, page, pages, budget)
    return [*pages, page] if page or not pages else pages


def _split_line(line: str, page: str, pages: list[str], budget: int) -> str:
    """Lay ``line`` word by word after ``page``, adding each full page to ``pages``; the page
    it ends on."""
    for n, word in enumerate(line.split()):
        longer = (page + ("\n" if n == 0 else " ") + word) if page else word
        if _septets([longer]) <= budget:
            page = longer
            continue
        if page:
            pages.append(page)
        page = word
        while _septets([page]) > budget:  # one word longer than a page: cut it
            cut = _fitting(page, budget)
            pages.append(page[:cut])
            page = page[cut:]
    return page


def _fitting(word: str, budget: int) -> int:
    """How many characters of ``word`` fit ``budget`` septets (escaped characters take two)."""
    cut = 0
    while cut < len(word) and _septets([word[: cut + 1]]) <= budget:
        cut += 1
    return max(cut, 1)


def page_count(session: Session) -> int:
    """How many pages the screen ``session`` is on has: a list's, a paged text's, else one."""
    spec = SCREENS[session.state]
    if spec.kind == "list":
        return len(list_pages(session))
    if spec.paged:
        return len(text_pages(session))
    return 1


def _body_lines(session: Session, ctx: Context) -> list[str]:
    spec = SCREENS[session.state]
    lang = session.lang
    if spec.kind == "menu":
        lines = _head_lines(session, ctx)
        values = {"number": session.phone}  # options that name the caller's number
        for n, option in enumerate(offered(spec, session, ctx.services), 1):
            lines.append(f"{n}. {text(option.label_lang or lang, option.label, **values)}")
        return lines + _nav(session)
    if spec.kind == "list":
        items = _item_lines(session, spec)
        pages = _pages(session, items)
        page = min(current_page(session), len(pages) - 1)
        lines = [text(lang, spec.title)] + [items[i] for i in pages[page]]
        if page + 1 < len(pages):
            lines.append(text(lang, "nav.more"))
        else:
            lines += _extra_lines(session)  # "another meter" comes after the last item
        return lines + _nav(session)
    if spec.paged:
        texts = text_pages(session)
        page = min(current_page(session), len(texts) - 1)
        return [texts[page], *([text(lang, "nav.more")] if page + 1 < len(texts) else []), *_nav(session)]
    lines = _head_lines(session, ctx)
    if spec.kind == "input":
        lines += [f"{n}. {text(lang, option.label)}" for n, option in enumerate(offered(spec, session, ctx.services), 1)]
    return lines + (_nav(session) if spec.kind in ("info", "input") else [])


def _head_lines(session: Session, ctx: Context) -> list[str]:
    """The lines above a screen's options: its body when it has one, else its title."""
    spec = SCREENS[session.state]
    if spec.body is not None:
        lines = spec.body(session, ctx)
        return [lines] if isinstance(lines, str) else list(lines)
    return [text(session.lang, spec.title, utility=clip(to_gsm7(ctx.utility), TITLE_WIDTH))]


def render(session: Session, ctx: Context) -> Screen:
    spec = SCREENS[session.state]
    lines = _body_lines(session, ctx)
    # One line above the screen at most: why the last input was refused, else a notice.
    hint_values = session.data.get("hint_values", {})
    head = [text(session.lang, key, **hint_values) for key in [session.hint or session.notice] if key]
    if session.state == "main" and ctx.banner:
        room = USSD_GSM7_LIMIT - _septets(head + lines) - 1
        if room > 10:
            head.insert(0, clip(to_gsm7(ctx.banner), room, ".."))
    screen_text = "\n".join(head + lines)
    while not fits_screen(screen_text) and any(isinstance(line, Spare) for line in lines):
        lines.remove(next(line for line in lines if isinstance(line, Spare)))
        screen_text = "\n".join(head + lines)
    if not fits_screen(screen_text):
        # Worst-case data is tested to fit; this guards against data nobody foresaw.
        screen_text = clip(to_gsm7(screen_text), USSD_GSM7_LIMIT, "..")
    return Screen(screen_text, end=spec.kind == "end")

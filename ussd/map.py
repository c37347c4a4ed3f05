"""The menu map: the menu machine drawn as a graph, each screen with its text and the day's
figures (ussd.figures), for a product owner to see where customers give up.

The graph is read from the machine itself (ussd.menu.MACHINE, built from the flows' edges),
so it cannot drift from what customers get: its nodes are the machine's states, its edges
the machine's transitions. Each screen's text is rendered by ussd.render from the flows'
own worst-case data (WORST, what the fit test renders), made neutral where it is filler
("TTTT..." becomes "..."). Built once per language and utility name, never per request.

The picture is an SVG of our own (no graphviz): one band per flow, one column per step
from the main menu, arrows for the moves a customer makes forward. `0` (back), `00` (home)
and the end after three invalid inputs exist on every screen: the legend says so instead
of drawing a hundred arrows.

`guichet menu graph` writes it to a file; the console's /console/menu shows it inline.
"""
from __future__ import annotations

import datetime
import functools
import itertools
import re
from collections import Counter, deque
from dataclasses import dataclass
from types import ModuleType, SimpleNamespace
from typing import IO, Any
from xml.sax.saxutils import escape, quoteattr

import click
import redis
from flask import Flask, current_app
from flask.cli import AppGroup
from transitions import Transition

from state.sessions import Session
from state.store import get_redis, get_store
from ussd import figures as screen_figures
from ussd import flows
from ussd.catalogue import languages, text
from ussd.figures import Figures
from ussd.flows import SCREENS
from ussd.flows.bill import WORST_ACCOUNT
from ussd.menu import MACHINE, NAVIGATION
from ussd.render import render
from ussd.screens import Context, Option

# -- the graph as data ------------------------------------------------------------------------
FORWARD, BACK, RESUME, EVERYWHERE = "forward", "back", "resume", "everywhere"
NAVIGATION_TRIGGERS = frozenset(move["trigger"] for move in NAVIGATION)  # home, restart, give_up
SAMPLE_PHONE = "+237699000001"
SAMPLE_CODE = "*384#"


@dataclass(frozen=True)
class Node:
    name: str  # the machine's state
    flow: str  # the flow module that declares it ("home" for the main menu and its kin)
    kind: str  # menu, list, input, info, end
    text: str  # the screen as a customer reads it, with sample data

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0]


@dataclass(frozen=True)
class Edge:
    source: str
    dest: str
    trigger: str
    kind: str  # FORWARD (a flow's own edge), BACK (0), RESUME, EVERYWHERE (00, restart, give up)
    label: str  # what the customer types or picks to take it, in the graph's language
    conditions: tuple[str, ...] = ()  # one entry per transition: "has_one_meter & meter_known"


@dataclass(frozen=True)
class Graph:
    lang: str
    flows: tuple[str, ...]  # in the main menu's order, home first
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)


# The operator's words of the picture (the screens' own come from the catalogue).
WORDS: dict[str, dict[str, str]] = {
    "fr": {
        "back": "0", "home": "00", "give_up": "3 saisies invalides", "pick": "un choix de la liste",
        "typed": "saisie acceptée", "title": "Carte du menu USSD", "figures": "{hops} passages · {drop_offs} "
        "abandons · {invalid} invalides", "legend_moves": "Flèches: ce que le client tape. 0 (retour) et 00 "
        "(accueil) depuis chaque écran; 3 saisies invalides mènent à too_many_invalid.",
        "legend_end": "Bord pointillé: écran de fin (END).", "legend_drop": "Bord rouge: des clients abandonnent "
        "ici.", "day": "Chiffres du {day}",
    },
    "en": {
        "back": "0", "home": "00", "give_up": "3 invalid inputs", "pick": "a choice from the list",
        "typed": "accepted input", "title": "USSD menu map", "figures": "{hops} hops · {drop_offs} drop-offs · "
        "{invalid} invalid", "legend_moves": "Arrows: what the customer types. 0 (back) and 00 (home) from every "
        "screen; 3 invalid inputs lead to too_many_invalid.", "legend_end": "Dashed border: an end screen (END).",
        "legend_drop": "Red border: customers give up here.", "day": "Figures of {day}",
    },
}


def words(lang: str) -> dict[str, str]:
    return WORDS.get(lang, WORDS["fr"])


def flow_name(flow: ModuleType) -> str:
    return flow.__name__.rsplit(".", 1)[-1]  # ussd.flows.buy -> buy


def flow_of_screens() -> dict[str, str]:
    """Each screen's flow: the module that declares it."""
    owner = {name: flow_name(flows.home) for name in flows.home.screens(flows.ENTRIES)}
    for flow in flows.FLOWS:
        owner.update({name: flow_name(flow) for name in flow.SCREENS})
    return owner


# Sample services: every option offered (the worst case of the fit test), nothing waived.
_OFFER_ALL: Any = SimpleNamespace(
    campaigns=SimpleNamespace(active=lambda now=None: ["a campaign"]), payments_out=lambda: False,
    now=lambda: None, incidents=SimpleNamespace(penalties_waived=lambda region, at: False,
                                                active=lambda: ["an incident"]))
_FILLER = re.compile(r"^(\S)\1{5,}$")  # "TTTTTT": a worst case's stand-in for a long text


def _neutral(value: Any) -> Any:
    """``value`` with the worst cases' filler lines ("TTTT", "MMMM MMMM") made "...": the
    map shows what a screen says, not how long it may get."""
    if isinstance(value, str):
        return "\n".join("..." if _FILLER.match(line.replace(" ", "")) else line
                         for line in value.split("\n"))
    if isinstance(value, dict):
        return {key: _neutral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_neutral(item) for item in value]
    return value


def sample_data() -> dict[str, Any]:
    """What the flows say their screens can show (their WORST), made neutral."""
    data: dict[str, Any] = {"meter_name": WORST_ACCOUNT["name"]}
    for flow in (flows.home, *flows.FLOWS):
        data.update(flow.WORST)
    return _neutral(data)


def screen_text(name: str, lang: str, utility: str) -> str:
    session = Session(session_id="map", phone=SAMPLE_PHONE, gateway="map", service_code=SAMPLE_CODE, network="",
                      lang=lang, state=name, history=["main"], data=sample_data())
    context = Context(utility=utility, service_code=SAMPLE_CODE, today=datetime.date.today(), services=_OFFER_ALL)
    return render(session, context).text


def _option_label(lang: str, option: Option, number: int | None) -> str:
    label = text(option.label_lang or lang, option.label, number=SAMPLE_PHONE)
    return f"{number}. {label}" if number else label


def edge_label(source: str, trigger: str, lang: str) -> str:
    """What the customer types on ``source`` to fire ``trigger``: the option's number and
    label, a pick from the list, an accepted input, 0 or 00."""
    said = words(lang)
    spec = SCREENS[source]
    if spec.kind == "menu":
        options = [_option_label(lang, option, n) for n, option in enumerate(spec.options, 1)
                   if option.trigger == trigger]
    else:  # a list's or an input's extra options are numbered after the items: no fixed number
        options = [_option_label(lang, option, None) for option in spec.extra if option.trigger == trigger]
    if options:
        return " | ".join(options)
    if trigger == spec.pick:
        return said["pick"]
    if trigger == spec.submit:
        return said["typed"]
    return said.get(trigger, trigger)  # back, home, give_up; restart and resume are options


def _kind(trigger: str) -> str:
    if trigger == "back":
        return BACK
    if trigger == "resume":
        return RESUME
    return EVERYWHERE if trigger in NAVIGATION_TRIGGERS else FORWARD


def _condition(transition: Transition) -> str:
    names = [("" if condition.target else "not ") + getattr(condition.func, "__name__", str(condition.func))
             for condition in transition.conditions]
    return " & ".join(names)


def machine_transitions() -> list[tuple[str, str, str, Transition]]:
    """Every transition of the machine: (source, trigger, dest, the transition)."""
    return [(source, trigger, transition.dest, transition)
            for trigger, event in MACHINE.events.items()
            for source, found in event.transitions.items()
            for transition in found if transition.dest is not None]  # none is internal: see ussd.menu


@functools.cache
def graph(lang: str, utility: str = "Guichet") -> Graph:
    """The machine as a graph, its screens in ``lang``; built once per language and name."""
    owner = flow_of_screens()
    nodes = tuple(Node(name, owner[name], SCREENS[name].kind, screen_text(name, lang, utility)) for name in MACHINE.states)
    conditions: dict[tuple[str, str, str], list[str]] = {}
    for source, trigger, dest, transition in machine_transitions():
        conditions.setdefault((source, trigger, dest), []).append(_condition(transition))
    edges = tuple(Edge(source, dest, trigger, _kind(trigger), edge_label(source, trigger, lang),
                       tuple(found for found in whens if found))
                  for (source, trigger, dest), whens in conditions.items())
    return Graph(lang, tuple(flow_name(flow) for flow in (flows.home, *flows.FLOWS)), nodes, edges)


# -- layout -----------------------------------------------------------------------------------
NODE_W, NODE_H = 230, 58
COLUMN_GAP, ROW_GAP = 150, 16
GUTTER = 110  # the flows' names, left of their bands
BAND_PAD = 14
TOP = 44  # the title
# One colour per flow (fill, border), in FLOWS order after home's: readable in print too.
PALETTE = (("#eceff1", "#546e7a"), ("#e3f2fd", "#1565c0"), ("#e8f5e9", "#2e7d32"), ("#fff8e1", "#f9a825"),
           ("#f3e5f5", "#6a1b9a"), ("#e0f7fa", "#00838f"), ("#fbe9e7", "#d84315"), ("#f1f8e9", "#558b2f"),
           ("#ede7f6", "#4527a0"))
DROP_COLOUR = "#c62828"


@dataclass(frozen=True)
class Box:
    x: float
    y: float


def depths(graph: Graph) -> dict[str, int]:
    """Each screen's fewest forward moves from the main menu; screens no forward move
    reaches (the offer to resume, the goodbye after three invalid inputs) stand with it."""
    forward: dict[str, list[str]] = {}
    for edge in graph.edges:
        if edge.kind == FORWARD:
            forward.setdefault(edge.source, []).append(edge.dest)
    found = {"main": 0}
    queue = deque(["main"])
    while queue:
        here = queue.popleft()
        for dest in forward.get(here, []):
            if dest not in found:
                found[dest] = found[here] + 1
                queue.append(dest)
    return {node.name: found.get(node.name, 0) for node in graph.nodes}


def layout(graph: Graph) -> tuple[dict[str, Box], list[tuple[str, float, float]], float, float]:
    """Where each screen's box goes: (boxes, bands as (flow, top, height), width, height).

    A band per flow, a column per depth; in a column, a band's screens are ordered by
    where the screens leading to them stand (fewer crossing arrows)."""
    depth = depths(graph)
    columns = max(depth.values()) + 1
    by_band: dict[tuple[str, int], list[str]] = {}
    for node in graph.nodes:
        by_band.setdefault((node.flow, depth[node.name]), []).append(node.name)
    bands: list[tuple[str, float, float]] = []
    top = float(TOP)
    for flow in graph.flows:
        rows = max((len(by_band.get((flow, column), [])) for column in range(columns)), default=0)
        if rows:
            height = 2 * BAND_PAD + rows * NODE_H + (rows - 1) * ROW_GAP
            bands.append((flow, top, height))
            top += height + 8
    band_top = {flow: band for flow, band, _ in bands}
    sources: dict[str, list[str]] = {}
    for edge in graph.edges:
        if edge.kind == FORWARD:
            sources.setdefault(edge.dest, []).append(edge.source)
    boxes: dict[str, Box] = {}
    for column, (flow, _, _) in itertools.product(range(columns), bands):
        names = by_band.get((flow, column), [])

        def pull(name: str) -> float:
            placed = [boxes[source].y for source in sources.get(name, []) if source in boxes]
            return sum(placed) / len(placed) if placed else 0.0

        for row, name in enumerate(sorted(names, key=pull)):
            boxes[name] = Box(GUTTER + column * (NODE_W + COLUMN_GAP),
                              band_top[flow] + BAND_PAD + row * (NODE_H + ROW_GAP))
    width = GUTTER + columns * (NODE_W + COLUMN_GAP) - COLUMN_GAP + 20
    return boxes, bands, width, top


# -- drawing ----------------------------------------------------------------------------------
def _number(lang: str, value: int) -> str:
    shown = f"{value:,}"
    return shown.replace(",", "\u202f") if lang == "fr" else shown  # as the console writes numbers


def _cut(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def figures_line(lang: str, found: Figures) -> str:
    return words(lang)["figures"].format(hops=_number(lang, found.hops), drop_offs=_number(lang, found.drop_offs),
                                         invalid=_number(lang, found.invalid))


def _node_svg(node: Node, box: Box, colours: tuple[str, str], found: Figures | None, lang: str) -> str:
    fill, border = colours
    gives_up = found is not None and found.drop_offs > 0
    stroke = DROP_COLOUR if gives_up else border
    dash = ' stroke-dasharray="5 3"' if node.kind == "end" else ""
    tooltip = node.text + (f"\n\n{figures_line(lang, found)}" if found is not None else "")
    lines = [
        f'<g id={quoteattr("screen-" + node.name)} class="screen" data-flow={quoteattr(node.flow)}>',
        f"<title>{escape(tooltip)}</title>",
        f'<rect x="{box.x:.0f}" y="{box.y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="{2.5 if gives_up else 1.2}"{dash}/>',
        f'<text x="{box.x + 8:.0f}" y="{box.y + 17:.0f}" font-size="12" font-weight="bold" fill="#212121">'
        f"{escape(node.name)}</text>",
        f'<text x="{box.x + 8:.0f}" y="{box.y + 33:.0f}" font-size="11" fill="#424242">'
        f"{escape(_cut(node.first_line, 36))}</text>",
    ]
    if found is not None:
        colour = DROP_COLOUR if gives_up else "#37474f"
        lines.append(f'<text x="{box.x + 8:.0f}" y="{box.y + 49:.0f}" font-size="10.5" fill="{colour}">'
                     f"{escape(figures_line(lang, found))}</text>")
    lines.append("</g>")
    return "\n".join(lines)


@dataclass(frozen=True)
class Route:
    path: str  # the SVG path of the arrow
    dashed: bool
    label_at: tuple[float, float]  # where its label's baseline starts (anchor "start") or ends ("end")
    anchor: str


def route(source: Box, dest: Box) -> Route:
    """An arrow from the right of ``source`` to the left of ``dest``, its label just before
    the arrowhead (a screen has few ways in, the main menu many ways out: labels there would
    pile up). Within a column it bulges out to the right; back to an earlier column it runs
    from the left of the source to the right of the dest, dashed, labelled where it leaves."""
    middle = NODE_H / 2
    if dest.x > source.x:
        start, end = (source.x + NODE_W, source.y + middle), (dest.x, dest.y + middle)
        bend = (end[0] - start[0]) / 2
        controls = ((start[0] + bend, start[1]), (end[0] - bend, end[1]))
        dashed, label_at, anchor = False, (end[0] - 8, end[1] - 5), "end"
    elif dest.x == source.x:
        start, end = (source.x + NODE_W, source.y + middle), (dest.x + NODE_W, dest.y + middle)
        reach = 30 + abs(end[1] - start[1]) / 4
        controls = ((start[0] + reach, start[1]), (end[0] + reach, end[1]))
        dashed, label_at, anchor = False, (end[0] + 10, end[1] - 5), "start"
    else:
        start, end = (source.x, source.y + middle), (dest.x + NODE_W, dest.y + middle)
        controls = ((start[0] - 70, start[1]), (end[0] + 70, end[1]))
        dashed, label_at, anchor = True, (start[0] - 8, start[1] - 5), "end"
    path = "M{:.0f},{:.0f} C{:.0f},{:.0f} {:.0f},{:.0f} {:.0f},{:.0f}".format(*start, *controls[0], *controls[1],
                                                                               *end)
    return Route(path, dashed, label_at, anchor)


def _edge_svg(way: Route, label: str, tooltip: str, stacked: int) -> str:
    """The arrow, its label lifted ``stacked`` lines above others ending at the same place."""
    dash = ' stroke-dasharray="6 4"' if way.dashed else ""
    x, y = way.label_at[0], way.label_at[1] - 11 * stacked
    return (f'<g class="move"><title>{escape(tooltip)}</title>'
            f'<path d="{way.path}" fill="none" stroke="#607d8b" stroke-width="1.2" marker-end="url(#arrow)"{dash}/>'
            f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="{way.anchor}" font-size="10" fill="#263238" '
            f'stroke="#ffffff" stroke-width="3" paint-order="stroke">{escape(_cut(label, 26))}</text></g>')


def svg(graph: Graph, figures: dict[str, Figures] | None = None, day: str = "", reader: str = "") -> str:
    """The graph as a standalone SVG document; with ``figures``, each screen carries its own.
    The picture's own words (title, figures, legend) are in ``reader``'s language, the
    operator's, which may not be the screens' (default: the same)."""
    boxes, bands, width, height = layout(graph)
    colours = {flow: PALETTE[n % len(PALETTE)] for n, flow in enumerate(graph.flows)}
    reader = reader or graph.lang
    said = words(reader)
    legend_top = height + 10
    total_height = legend_top + 70
    title = said["title"] + (" · " + said["day"].format(day=day) if day else "")
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{total_height:.0f}" '
        f'viewBox="0 0 {width:.0f} {total_height:.0f}" role="img" aria-labelledby="menu-map-title" '
        f'font-family="DejaVu Sans, Arial, sans-serif">',
        f'<title id="menu-map-title">{escape(title)}</title>',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#607d8b"/></marker></defs>',
        f'<rect width="{width:.0f}" height="{total_height:.0f}" fill="#ffffff"/>',
        f'<text x="12" y="26" font-size="17" font-weight="bold" fill="#212121">{escape(title)}</text>',
    ]
    for flow, top, band_height in bands:
        fill, border = colours[flow]
        parts.append(f'<g class="flow" id={quoteattr("flow-" + flow)}><rect x="4" y="{top:.0f}" '
                     f'width="{width - 8:.0f}" height="{band_height:.0f}" rx="8" fill="{fill}" fill-opacity="0.45" '
                     f'stroke="{border}" stroke-opacity="0.35"/><text x="14" y="{top + 22:.0f}" font-size="13" '
                     f'font-weight="bold" fill="{border}">{escape(flow)}</text></g>')
    drawn: dict[tuple[str, str], list[Edge]] = {}
    for edge in graph.edges:
        if edge.kind == FORWARD:
            drawn.setdefault((edge.source, edge.dest), []).append(edge)
    labels_at: Counter[tuple[float, float]] = Counter()  # labels already placed at a spot
    for (source, dest), together in drawn.items():
        label = " | ".join(dict.fromkeys(edge.label for edge in together))
        tooltip = "\n".join(f"{source} → {dest}: {edge.trigger}" + (f" ({' | '.join(edge.conditions)})"
                                                                    if edge.conditions else "") for edge in together)
        way = route(boxes[source], boxes[dest])
        parts.append(_edge_svg(way, label, tooltip, labels_at[way.label_at]))
        labels_at[way.label_at] += 1
    for node in graph.nodes:
        found = None if figures is None else figures.get(node.name, Figures())
        parts.append(_node_svg(node, boxes[node.name], colours[node.flow], found, reader))
    for n, key in enumerate(("legend_moves", "legend_end", "legend_drop")):
        parts.append(f'<text x="12" y="{legend_top + 16 + n * 18:.0f}" font-size="12" fill="#37474f">'
                     f"{escape(said[key])}</text>")
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def picture(app: Flask, lang: str, day: str, reader: str = "") -> tuple[str, dict[str, Figures] | None]:
    """The map of ``app``'s menu, its screens in ``lang``, with ``day``'s figures, for a
    ``reader`` of that language or another; and those figures (None when Redis does not
    answer: the map still shows the menu)."""
    try:
        found: dict[str, Figures] | None = screen_figures.read(get_redis(app), day)
    except redis.RedisError:
        found = None
    return svg(graph(lang, str(app.config["UTILITY_NAME"])), found, day, reader), found


# -- `guichet menu graph` ----------------------------------------------------------------------
menu_cli = AppGroup("menu", help="The USSD menu.")


@menu_cli.command("graph")
@click.option("--lang", type=click.Choice(languages()), default=languages()[0], show_default=True,
              help="Language of the screens' texts.")
@click.option("--day", default=None, help="Figures of this day (YYYY-MM-DD, UTC). Default: today.")
@click.option("--out", type=click.File("w", encoding="utf-8"), default="menu.svg", show_default=True,
              help="The SVG file to write (- for standard output).")
def graph_command(lang: str, day: str | None, out: IO[str]) -> None:
    """Draw the menu machine as an SVG: every screen, the moves between them, and each
    screen's hops, drop-offs and invalid inputs of the day."""
    if day is not None:
        try:
            datetime.date.fromisoformat(day)
        except ValueError:
            raise click.BadParameter("not a date like 2026-12-02", param_hint="--day") from None
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    drawn, found = picture(app, lang, day or screen_figures.today())
    out.write(drawn)
    if get_store(app).embedded:  # this command's own store: the server's figures are not there
        click.echo("REDIS_URL is not set: the map has no figures (set it to the server's Redis)", err=True)
    elif found is None:
        click.echo("Redis did not answer: the map has no figures", err=True)
    if out.name != "<stdout>":
        click.echo(f"wrote {out.name}", err=True)


def init_app(app: Flask) -> None:
    app.cli.add_command(menu_cli)

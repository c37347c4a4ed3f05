"""The menu map page: the USSD menu drawn from the machine itself (ussd.map), its screens in
the chosen language, and a table of the day's figures per screen with the screens where
customers give up first, for a product owner to see what to change."""
from __future__ import annotations

import datetime
from dataclasses import dataclass

from flask import current_app, render_template, request
from markupsafe import Markup

from state import tally
from ussd import figures
from ussd import map as menu_map
from ussd.catalogue import languages
from utility.console import bp, language, t
from utility.console.auth import signed_in


@dataclass(frozen=True)
class Row:
    node: menu_map.Node
    figures: figures.Figures


def rows(graph: menu_map.Graph, found: dict[str, figures.Figures]) -> list[Row]:
    """Every screen with its figures: most drop-offs first, then most invalid inputs, then
    the busiest; screens nobody reached keep the machine's order."""
    table = [Row(node, found.get(node.name, figures.Figures())) for node in graph.nodes]
    order = {row.node.name: n for n, row in enumerate(table)}
    return sorted(table, key=lambda row: (-row.figures.drop_offs, -row.figures.invalid, -row.figures.hops,
                                          order[row.node.name]))


def _chosen_language() -> str:
    """The screens' language: asked for, else the operator's own when the menu has it."""
    offered = languages()
    asked = request.args.get("lang", "")
    if asked in offered:
        return asked
    return language() if language() in offered else offered[0]


def _chosen_day() -> tuple[str, str | None]:
    """The day asked for (YYYY-MM-DD), else today; and what to say when it was not a day."""
    asked = request.args.get("day", "").strip()
    if not asked:
        return figures.today(), None
    try:
        return datetime.date.fromisoformat(asked).isoformat(), None
    except ValueError:
        return figures.today(), t("menu_map.bad_day", day=asked[:20])


@bp.get("/menu", endpoint="menu_map")  # the name the console's menu links to (utility.console.PAGES)
@signed_in
def menu_map_page() -> str:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    lang = _chosen_language()
    day, problem = _chosen_day()
    tally.of(app).flush()  # this process's latest counts first (it keeps them when Redis is away)
    drawn, found = menu_map.picture(app, lang, day, reader=language())
    if found is None:
        problem = t("menu_map.no_figures")
    graph = menu_map.graph(lang, str(app.config["UTILITY_NAME"]))
    return render_template("console/menu.html", svg=Markup(drawn), rows=rows(graph, found or {}), lang=lang,
                           day=day, map_languages=languages(), problem=problem)

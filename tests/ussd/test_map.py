"""The menu map (ussd.map): the machine drawn as it is, and each screen's figures of the day
(ussd.figures), counted without costing a hop anything."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from state import keys, tally
from state.store import get_redis
from tests.ussd import test_round_trips as round_trips
from tests.ussd.conftest import ONE_METER, SEVERAL, Phone
from ussd import figures, flows
from ussd import map as menu_map
from ussd.catalogue import languages, text
from ussd.menu import MACHINE

SVG = "{http://www.w3.org/2000/svg}"
wire = round_trips.wire  # counts the round trips a hop sends (tests/ussd/test_round_trips.py)


@pytest.fixture(autouse=True)
def flushed_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """No flushing thread: the tests flush when the story says so."""
    monkeypatch.setattr(tally.Tally, "_ensure_flushing", lambda self: None)


def end_of_session(client, phone: Phone, status: str) -> None:
    response = client.post("/ussd/africastalking/events", data={
        "sessionId": phone.session_id, "phoneNumber": phone.phone, "status": status, "hopsCount": "3"})
    assert response.status_code == 200


def screens_drawn(svg: str) -> dict[str, ET.Element]:
    root = ET.fromstring(svg)  # well-formed, or this raises
    assert root.tag == f"{SVG}svg"
    return {group.get("id", "")[len("screen-"):]: group for group in root.iter(f"{SVG}g")
            if group.get("class") == "screen"}


# -- the graph is the machine -------------------------------------------------------------------
@pytest.mark.parametrize("lang", languages())
def test_the_map_has_every_screen_of_every_flow_with_its_flow(lang):
    graph = menu_map.graph(lang)
    assert {node.name for node in graph.nodes} == set(MACHINE.states)
    for flow in flows.FLOWS:
        name = flow.__name__.rsplit(".", 1)[-1]
        assert {node.name for node in graph.nodes if node.flow == name} == set(flow.SCREENS)


def test_the_map_has_every_move_the_machine_has_and_no_other():
    in_machine = {(source, trigger, transition.dest)
                  for trigger, event in MACHINE.events.items()
                  for source, found in event.transitions.items() for transition in found}
    graph = menu_map.graph("fr")
    assert {(edge.source, edge.trigger, edge.dest) for edge in graph.edges} == in_machine
    forward = {(edge.source, edge.trigger, edge.dest) for edge in graph.edges if edge.kind == menu_map.FORWARD}
    for edge in flows.EDGES:  # each flow's own edges are the ones drawn as arrows
        sources = [edge["source"]] if isinstance(edge["source"], str) else edge["source"]
        assert {(source, edge["trigger"], edge["dest"]) for source in sources} <= forward


@pytest.mark.parametrize("lang", languages())
def test_an_arrow_out_of_a_menu_is_labelled_with_the_option_the_customer_reads(lang):
    graph = menu_map.graph(lang)
    checked = 0
    for edge in graph.edges:
        if edge.kind == menu_map.FORWARD and graph.node(edge.source).kind == "menu":
            shown = graph.node(edge.source).text.splitlines()
            assert set(edge.label.split(" | ")) <= set(shown), (edge, shown)
            checked += 1
    assert checked


def test_each_screen_reads_in_the_chosen_language():
    french, english = menu_map.graph("fr", "Eneo"), menu_map.graph("en", "Eneo")
    assert text("fr", "main.buy") in french.node("main").text
    assert text("en", "main.buy") in english.node("main").text
    assert french.node("main").first_line == english.node("main").first_line == "Eneo"
    assert english.node("language").text != french.node("language").text


# -- the picture ------------------------------------------------------------------------------
@pytest.mark.parametrize("lang", languages())
def test_the_picture_is_well_formed_svg_with_a_box_per_screen(lang):
    graph = menu_map.graph(lang)
    drawn = screens_drawn(menu_map.svg(graph))
    assert set(drawn) == set(MACHINE.states)
    for node in graph.nodes:
        title = drawn[node.name].find(f"{SVG}title")
        assert title is not None and title.text == node.text  # the whole screen on hover


def test_a_screen_where_customers_give_up_stands_out_with_its_figures():
    graph = menu_map.graph("en")
    drawn = screens_drawn(menu_map.svg(graph, {"buy_amount": figures.Figures(hops=40, drop_offs=12, invalid=5)}))
    given_up = " ".join(drawn["buy_amount"].itertext())
    assert "40 hops · 12 drop-offs · 5 invalid" in given_up
    assert "0 hops · 0 drop-offs · 0 invalid" in " ".join(drawn["main"].itertext())
    borders = {name: group.find(f"{SVG}rect").get("stroke") for name, group in drawn.items()}
    assert [name for name, colour in borders.items() if colour == menu_map.DROP_COLOUR] == ["buy_amount"]


# -- the day's figures --------------------------------------------------------------------------
def test_an_invalid_input_and_a_dropped_session_show_in_the_days_figures(app, client, customers):
    phone = Phone(client, ONE_METER).dial()
    phone.send("9")  # no such option: the polite retry, on the main menu
    assert phone.screen.startswith(text("fr", "hint.choice"))
    phone.send("1")  # one meter: straight to the amount
    end_of_session(client, phone, "Incomplete")  # hung up on the amount
    finished = Phone(client, SEVERAL).dial().send("3").send("2")  # resend my last code: the call ends
    assert finished.ended
    end_of_session(client, finished, "Success")

    assert figures.read(get_redis(app), figures.today()) == {}  # counted in memory until a flush
    tally.of(app).flush()
    day = figures.read(get_redis(app), figures.today())
    assert day["main"] == figures.Figures(hops=3, drop_offs=0, invalid=1)
    assert day["buy_amount"] == figures.Figures(hops=1, drop_offs=1, invalid=0)
    assert sum(found.drop_offs for found in day.values()) == 1  # the finished call gave nothing up


def test_a_session_end_for_a_session_long_gone_counts_no_drop_off(app, client, customers):
    end_of_session(client, Phone(client, ONE_METER, session_id="ATUid_never_seen"), "Failed")
    tally.of(app).flush()
    assert figures.read(get_redis(app), figures.today()) == {}


def test_counting_the_figures_costs_a_hop_no_round_trip(app, client, customers, wire):
    phone = Phone(client, ONE_METER)
    with wire.hop() as dial:
        phone.dial()
    with wire.hop() as refused:
        phone.send("9")
    with wire.hop() as moved:
        phone.send("4")  # menu screens that call no domain service: two round trips each
    for trips in (dial, refused, moved):
        assert len(trips) == round_trips.MAX_TRIPS, round_trips.shown(trips)
    tally.of(app).flush()  # what the counting thread does every few seconds
    day = figures.read(get_redis(app), figures.today())
    assert (day["main"].hops, day["main"].invalid, day["language"].hops) == (2, 1, 1)


# -- `guichet menu graph` -------------------------------------------------------------------------
def test_guichet_menu_graph_writes_the_map_with_the_days_figures(app, runner, tmp_path):
    get_redis(app).hset(keys.screen_figures("2026-11-30"), mapping={"payer:hops": 31, "payer:drop_offs": 9})
    out = tmp_path / "menu.svg"
    result = runner.invoke(args=["menu", "graph", "--lang", "en", "--day", "2026-11-30", "--out", str(out)])
    assert result.exit_code == 0, result.output
    drawn = screens_drawn(out.read_text(encoding="utf-8"))
    assert set(drawn) == set(MACHINE.states)
    assert "31 hops · 9 drop-offs · 0 invalid" in " ".join(drawn["payer"].itertext())
    assert text("en", "main.buy") in out.read_text(encoding="utf-8")


def test_guichet_menu_graph_writes_to_standard_output_and_refuses_a_bad_day(runner):
    result = runner.invoke(args=["menu", "graph", "--out", "-"])
    assert result.exit_code == 0, result.output
    assert text("fr", "main.buy") in result.stdout and result.stdout.lstrip().startswith("<svg")
    refused = runner.invoke(args=["menu", "graph", "--day", "30/11/2026", "--out", "-"])
    assert refused.exit_code == 2 and "--day" in refused.output

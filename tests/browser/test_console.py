"""The operator console in a real browser: an operator signs in (a wrong key first), cuts the
vending backend and sees the overview say so, opens a campaign and watches its count rise as a
customer registers from the web phone, declares an outage after its dry run, finds the order of
a purchase made on the web phone and reads its journal; all of it with the keyboard alone, on a
laptop and on a phone-width screen.

One served app for the module (a server per test would cost seconds each): each test uses its
own campaign code, incident and order, and puts back any switch it flips.
"""
from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, ViewportSize, expect

from state import tally
from tests.browser.conftest import LAPTOP, OPERATOR, OPERATOR_KEY, PHONE_WIDTH, Live, demo_server
from tests.live import wait_for
from utility import operations
from utility.demo import PHONE_ONE_METER
from utility.services import services

LOCAL_MINUTE = "%Y-%m-%dT%H:%M"  # what a datetime-local field takes
Screenshot = Callable[..., Path]  # (page, name, full_page=True): tests.browser.conftest.screenshot

# Every page an operator opens, for the layout and label checks.
PAGES = ("/console/", "/console/orders", f"/console/orders?q={PHONE_ONE_METER}", "/console/customers",
         "/console/campaigns", "/console/incidents", "/console/audit", "/console/menu", "/console/phone/")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The harness's served app (tests.browser.conftest.live), once for the whole module."""
    with demo_server(tmp_path_factory.mktemp("console") / "sms.jsonl") as served:
        yield served


def sign_in(page: Page, path: str = "/console/") -> None:
    page.goto(path)
    page.get_by_label("Clé d'administration").fill(OPERATOR_KEY)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("button", name="Se déconnecter")).to_be_visible()


def dial(page: Page) -> None:
    """Call the service from the web phone as the demo customer with one meter."""
    page.goto("/console/phone/")
    expect(page.get_by_label("Numéro de téléphone")).to_have_value(PHONE_ONE_METER)
    page.get_by_role("button", name="Appeler").click()
    expect(page.get_by_role("status", name="Écran du téléphone")).to_contain_text("1. Acheter des unités")


def answer(page: Page, *answers: str) -> None:
    """Type each answer and press Enter, waiting for the next screen each time."""
    for typed in answers:
        entry = page.get_by_label("Votre réponse")
        entry.fill(typed)
        entry.press("Enter")  # the form posts the hop: a new page
        page.wait_for_load_state()
        expect(page.get_by_label("Votre réponse").or_(page.get_by_role("button", name="Appeler"))).to_be_visible()


def screen_of(page: Page) -> str:
    return page.get_by_role("status", name="Écran du téléphone").inner_text()


def fits_the_width(page: Page) -> bool:
    """No sideways scrolling of the page itself (a wide table scrolls inside its own box)."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def cards_spilling(page: Page) -> list[str]:
    """The cards whose content sticks out past their own border (a button half outside its card)."""
    return list(page.evaluate("""() => Array.from(document.querySelectorAll('.card'))
        .filter(card => card.scrollWidth > card.clientWidth + 1)
        .map(card => (card.querySelector('h2, h3') || card).textContent.trim())"""))


def controls_out_of_sight(page: Page) -> list[str]:
    """The controls that stick out past the screen's edges (half a button behind a table's scroll)."""
    return list(page.evaluate("""() => Array.from(document.querySelectorAll('button, input, select, textarea'))
        .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
        .filter(el => { const box = el.getBoundingClientRect(); return box.left < 0 || box.right > window.innerWidth; })
        .map(el => (el.getAttribute('aria-label') || el.innerText || el.name || el.id).trim())"""))


def unlabelled_controls(page: Page) -> list[str]:
    """The form controls an operator's screen reader would announce without a name."""
    return list(page.evaluate("""() => Array.from(document.querySelectorAll('input, select, textarea'))
        .filter(el => el.type !== 'hidden')
        .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
        .map(el => el.outerHTML.slice(0, 80))"""))


def test_a_wrong_key_is_refused_and_the_right_one_lets_the_operator_in(page: Page, screenshot: Screenshot) -> None:
    page.goto("/console/")
    expect(page).to_have_url(re.compile(r"/console/signin"))
    screenshot(page, "console-signin")

    page.get_by_label("Clé d'administration").fill("not-the-key-of-anyone")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("alert")).to_have_text("Clé refusée.")
    expect(page.get_by_role("heading", name="Connexion à la console")).to_be_visible()
    expect(page.get_by_role("navigation").get_by_role("link", name="Vue d'ensemble")).to_have_count(0)

    page.get_by_label("Clé d'administration").fill(OPERATOR_KEY)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Vue d'ensemble", level=1)).to_be_visible()
    expect(page.locator(".who")).to_have_text(OPERATOR)


def test_cutting_vending_shows_on_the_overview_until_it_is_put_back(page: Page, live: Live) -> None:
    sign_in(page)
    vending = page.locator('td[data-backend="vending"]')
    expect(vending).to_have_text("en service")
    try:
        page.get_by_role("button", name="Couper Vente (jetons)").click()
        expect(page.get_by_role("status").filter(has_text="Interrupteur changé.")).to_be_visible()
        expect(vending).to_have_text("coupé")
        expect(vending).to_have_attribute("data-state", "down")
        expect(page.locator("tr.bad", has=vending)).to_have_count(1)  # the row stands out

        page.get_by_role("button", name="Rétablir Vente (jetons)").click()
        expect(vending).to_have_text("en service")
        expect(page.get_by_role("button", name="Couper Vente (jetons)")).to_be_visible()
    finally:  # the other tests buy units: never leave vending cut behind a failure
        with live.app.app_context():
            operations.switch_backend("vending", False)


def test_a_campaign_made_in_the_console_counts_a_registration_from_the_web_phone(page: Page, live: Live,
                                                                                screenshot: Screenshot) -> None:
    sign_in(page, "/console/campaigns")
    with live.app.app_context():
        opens = services(live.app).campaigns.now() - datetime.timedelta(hours=1)
    page.get_by_label("Code", exact=True).fill("SOLEIL")
    page.get_by_label("Nom (Français)").fill("Soleil offert")
    page.get_by_label("Nom (English)").fill("Free sunshine")
    page.get_by_label("Début").fill(opens.strftime(LOCAL_MINUTE))
    page.get_by_label("Fin", exact=True).fill((opens + datetime.timedelta(days=7)).strftime(LOCAL_MINUTE))
    page.get_by_label("Type d'avantage").select_option(label="kWh")
    page.get_by_label("Quantité par inscrit").fill("20")
    page.get_by_label("Quota", exact=True).fill("100")
    page.get_by_role("button", name="Créer la campagne").click()

    expect(page.get_by_role("heading", name="Campagne SOLEIL · Soleil offert")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Campagne créée.")).to_be_visible()
    registered = page.locator("#registered")
    expect(registered).to_have_text("0")
    page.evaluate("window.stillTheSamePage = true")  # gone if the page were loaded again

    phone = page.context.new_page()
    dial(phone)
    expect(phone.get_by_role("status", name="Écran du téléphone")).to_contain_text("4. Crédits gratuits")
    answer(phone, "4", "1")  # free credit, then the one meter listed
    assert screen_of(phone).startswith("Inscription SOLEIL recue pour le compteur"), screen_of(phone)
    phone.close()

    page.bring_to_front()
    expect(registered).to_have_text("1", timeout=15_000)  # the live part refreshes every 5 s
    assert page.evaluate("window.stillTheSamePage") is True
    expect(page.locator("#taken")).to_have_attribute("value", "1")
    screenshot(page, "console-campaign")


def test_a_purchase_on_the_web_phone_is_found_with_its_journal(page: Page, live: Live,
                                                             screenshot: Screenshot) -> None:
    sign_in(page, "/console/phone/")
    dial(page)
    answer(page, "1", "5000", "1", "1", "1")  # buy, amount (the one meter), pay, this number, confirm
    expect(page.locator("#kind")).to_have_text("END : la session est terminée")
    reference = screen_of(page).rsplit(" ", 1)[1].strip()
    assert re.fullmatch(r"[A-Z0-9]{6,12}", reference), screen_of(page)
    # The operator looks once the customer says the token arrived.
    wait_for(lambda: any(reference in str(m["body"]) and "Code:" in str(m["body"])
                         for m in live.sms_to(PHONE_ONE_METER)))

    page.get_by_role("navigation").get_by_role("link", name="Commandes").click()
    page.get_by_label("Référence, téléphone, compteur ou compte").fill(reference)
    page.get_by_role("button", name="Chercher").click()
    page.locator("#found").get_by_role("link", name=reference).click()

    expect(page.get_by_role("heading", name=f"Commande {reference}")).to_be_visible()
    expect(page.locator("#order-state")).to_have_text("reçu envoyé")
    # Each move on its line, from "créée" to the receipt sent: the "Vers" column.
    expect(page.locator("#journal tbody tr").first.locator("td").nth(2)).to_have_text("créée")
    expect(page.locator("#journal tbody tr td:nth-child(4)")).to_have_text(
        ["paiement demandé", "payée", "livrée", "reçu envoyé"])
    expect(page.locator("#messages")).to_contain_text("receipt")
    screenshot(page, "console-order")

    # The overview counts it among today's orders (figures reach Redis every 5 s: flushed now, not waited for).
    tally.of(live.app).flush()
    page.get_by_role("navigation").get_by_role("link", name="Vue d'ensemble").click()
    expect(page.locator("#orders-today tr", has_text="reçu envoyé").locator("td")).to_have_text("1")
    screenshot(page, "console-overview")


def test_an_outage_is_declared_after_its_dry_run_and_its_broadcast_goes_out(page: Page,
                                                                           screenshot: Screenshot) -> None:
    sign_in(page, "/console/incidents")
    page.get_by_label("Titre (Français)").fill("Coupure Yaounde Centre")
    page.get_by_label("Titre (English)").fill("Outage Yaounde Centre")
    page.get_by_label("Message (Français)").fill("Travaux sur le poste de Mvog-Ada.")
    page.get_by_label("Message (English)").fill("Works on the Mvog-Ada substation.")
    page.get_by_role("group", name="Régions concernées").get_by_label("Centre", exact=True).check()
    page.get_by_role("group", name="Services touchés").get_by_label("alimentation").check()
    page.get_by_label("Prévenir les clients des régions par SMS").check()
    page.get_by_role("button", name="Essai à blanc").click()

    dry_run = page.locator("#preview")
    expect(dry_run).to_contain_text("rien n'est encore fait")
    recipients = int(page.locator("#preview-recipients").inner_text())
    assert recipients >= 1  # Jean Mbarga at least lives in the Centre
    assert int(page.locator("#preview-segments").inner_text()) >= recipients
    expect(page.locator("#preview-cost")).to_contain_text("XAF le segment")
    expect(page.locator("#preview-languages")).to_contain_text("Travaux sur le poste de Mvog-Ada.")
    screenshot(page, "console-incident-dry-run")

    page.get_by_role("button", name="Confirmer et déclarer").click()
    expect(page.get_by_role("status").filter(has_text="Incident déclaré.")).to_be_visible()
    expect(page.locator("#incident-status")).to_have_text("en cours")
    broadcast = page.locator("article.broadcast")
    expect(broadcast.locator('[data-count="recipients"]')).to_have_text(str(recipients), timeout=15_000)
    expect(broadcast).to_have_attribute("data-state", "done", timeout=15_000)  # refreshed by itself
    expect(broadcast.locator('[data-count="sent"]')).to_have_text(str(recipients))

    page.get_by_role("navigation").get_by_role("link", name="Incidents").click()
    expect(page.locator("#incidents tbody tr", has_text="Coupure Yaounde Centre")).to_contain_text("en cours")


def test_the_menu_map_draws_the_menu(page: Page, screenshot: Screenshot) -> None:
    sign_in(page, "/console/menu")
    expect(page.get_by_role("region", name="Carte du menu, défilable").locator("svg")).to_be_visible()
    expect(page.locator("#screens tbody tr").first).to_be_visible()
    screenshot(page, "console-menu-map", full_page=False)


def focus_of(page: Page) -> dict[str, str]:
    """What has the keyboard focus, and whether it is drawn (the focus ring's outline)."""
    return dict(page.evaluate("""() => {
        const el = document.activeElement, style = getComputedStyle(el);
        return {id: el.id, tag: el.tagName, name: (el.getAttribute('aria-label') || el.innerText || el.value || '').trim(),
                ring: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0 ? 'yes' : 'no'};
    }"""))


def focusable_count(page: Page) -> int:
    """How many controls the Tab key should stop at (the skip link is shown only when focused)."""
    return int(page.evaluate("""() => Array.from(document.querySelectorAll(
        'a[href], button, input:not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"])'))
        .filter(el => !el.disabled && (el.offsetParent !== null || el.classList.contains('skip'))).length"""))


def tab_through(page: Page, presses: int) -> list[dict[str, str]]:
    reached = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        reached.append(focus_of(page))
    return reached


def test_the_keyboard_alone_signs_in_and_reaches_every_control_of_the_overview(page: Page) -> None:
    page.goto("/console/signin")
    assert focus_of(page)["id"] == "key"  # the key field takes the focus at once
    page.keyboard.type("not-the-key-of-anyone")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("Clé refusée.")
    assert unlabelled_controls(page) == []

    # Round the whole page and back to the key field: every stop drawn, each control reached.
    stops = tab_through(page, 1)
    while stops[-1]["id"] != "key" and len(stops) < 2 * focusable_count(page):
        stops += tab_through(page, 1)
    assert stops[-1]["id"] == "key", stops
    assert all(stop["ring"] == "yes" for stop in stops if stop["tag"] != "BODY"), stops
    assert {"Aller au contenu", "English", "Se connecter"} <= {stop["name"] for stop in stops}
    page.keyboard.type(OPERATOR_KEY)
    page.keyboard.press("Tab")
    assert focus_of(page)["name"] == "Se connecter"
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Vue d'ensemble", level=1)).to_be_visible()

    stops = tab_through(page, focusable_count(page))
    assert all(stop["ring"] == "yes" for stop in stops), [stop for stop in stops if stop["ring"] != "yes"]
    assert len({(stop["tag"], stop["id"], stop["name"]) for stop in stops}) == len(stops)  # no control skipped
    names = [stop["name"] for stop in stops]
    for control in ("Aller au contenu", "Vue d'ensemble", "Commandes", "Campagnes", "Incidents", "Téléphone",
                    "English", "Se déconnecter", "Couper Vente (jetons)", "Couper Facturation"):
        assert control in names, (control, names)
    assert unlabelled_controls(page) == []


@pytest.mark.parametrize("size", [LAPTOP, PHONE_WIDTH], ids=["laptop", "phone-width"])
def test_every_page_fits_the_screen_with_a_label_on_each_control(page: Page, size: ViewportSize) -> None:
    page.set_viewport_size(size)
    page.goto("/console/signin")
    assert fits_the_width(page)
    sign_in(page)
    too_wide, spilling, out_of_sight, unlabelled = {}, {}, {}, {}
    for path in PAGES:
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        if not fits_the_width(page):
            too_wide[path] = page.evaluate("document.documentElement.scrollWidth")
        if cards_spilling(page):
            spilling[path] = cards_spilling(page)
        if controls_out_of_sight(page):
            out_of_sight[path] = controls_out_of_sight(page)
        if unlabelled_controls(page):
            unlabelled[path] = unlabelled_controls(page)
    assert (too_wide, spilling, out_of_sight, unlabelled) == ({}, {}, {}, {})

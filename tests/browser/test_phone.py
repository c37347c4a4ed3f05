"""The web phone in a real browser: an operator signs in, dials the service as a demo customer,
buys units with the keypad and the keyboard, reads the END screen with the order's reference,
and watches the token SMS arrive in the page's list once the demo provider approves."""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import OPERATOR_KEY, PHONE_WIDTH, SERVICE_CODE, Live
from utility.demo import PHONE_ONE_METER


def sign_in_to_the_phone(page: Page) -> None:
    page.goto("/console/phone/")
    expect(page).to_have_url(re.compile(r"/console/signin"))  # behind sign-in outside the embedded store
    page.get_by_label("Clé d'administration").fill(OPERATOR_KEY)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", name="Téléphone web")).to_be_visible()


def send(page: Page, answer: str) -> None:
    """Type ``answer`` on the keyboard and press Enter, as a trainer at a laptop does."""
    entry = page.get_by_label("Votre réponse")
    entry.fill(answer)
    entry.press("Enter")
    expect(page.get_by_label("Votre réponse").or_(page.get_by_role("button", name="Appeler"))).to_be_visible()


def test_dial_buy_units_and_see_the_token_sms_arrive(page: Page, live: Live, screenshot: Callable[..., Path]) -> None:
    sign_in_to_the_phone(page)
    expect(page.get_by_label("Numéro à composer")).to_have_value(SERVICE_CODE)
    expect(page.get_by_label("Numéro de téléphone")).to_have_value(PHONE_ONE_METER)

    page.get_by_role("button", name="Appeler").click()
    display = page.get_by_role("status", name="Écran du téléphone")
    expect(display).to_contain_text("1. Acheter des unités")
    expect(page.locator("#kind")).to_have_text("CON : l'écran attend une réponse")
    expect(page.locator("#length")).to_contain_text("sur 182 caractères (GSM-7)")
    screenshot(page, "phone-laptop")

    # "1" on the on-screen keypad, then Send: the keypad types into the answer field.
    page.get_by_role("group", name="Clavier").get_by_role("button", name="1", exact=True).click()
    expect(page.get_by_label("Votre réponse")).to_have_value("1")
    page.get_by_role("button", name="Envoyer").click()
    expect(display).to_contain_text("Montant en FCFA")

    for answer in ("5000", "1", "1", "1"):  # amount (the one meter), pay, this number, confirm
        send(page, answer)
    expect(page.locator("#kind")).to_have_text("END : la session est terminée")
    expect(display).to_contain_text("Réf.")
    reference = display.inner_text().rsplit(" ", 1)[1].strip()
    assert re.fullmatch(r"[A-Z0-9]{6,12}", reference), reference

    # The demo provider approves 1.5 s later, the worker vends and sends the token: the list refreshes itself.
    sms = page.locator("#sms")
    assert reference not in sms.inner_text()
    expect(sms).to_contain_text(reference, timeout=15_000)
    expect(sms).to_contain_text("Code:")
    (token_sms,) = [m for m in live.sms_to(PHONE_ONE_METER) if reference in str(m["body"]) and "Code:" in str(m["body"])]
    expect(sms).to_contain_text(str(token_sms["body"]).splitlines()[0])
    screenshot(page, "phone-token-sms")


def test_the_phone_fits_a_phone_width_screen(page: Page, screenshot: Callable[..., Path]) -> None:
    page.set_viewport_size(PHONE_WIDTH)
    sign_in_to_the_phone(page)
    page.get_by_role("button", name="Appeler").click()
    expect(page.get_by_role("status", name="Écran du téléphone")).to_contain_text("1. Acheter des unités")
    # Nothing wider than the screen: no sideways scrolling on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH["width"]
    for control in (page.get_by_label("Votre réponse"), page.get_by_role("button", name="Envoyer"),
                    page.get_by_role("button", name="Raccrocher")):
        box = control.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE_WIDTH["width"]
    screenshot(page, "phone-narrow")

"""The main menu's incident notice, as the caller hears it: while an incident touches the
region of one of their accounts, the menu starts with its title; elsewhere, or once it is
resolved, the menu is as it was. Reading it costs the dial no round trip."""
from __future__ import annotations

from typing import Any

from state import keys
from tests.ussd.conftest import NOBODY, ONE_METER, POSTPAID_ONLY, Phone
from tests.ussd.test_round_trips import shown, wire  # noqa: F401
from ussd.render import USSD_GSM7_LIMIT
from utility.services import services

MENU = ["1. Acheter des unités", "2. Payer une facture", "3. Mon compte", "4. Langue / Language"]
MENU_WITH_NEWS = [*MENU[:3], "4. Infos coupures", "5. Langue / Language"]  # while an incident is under way


def post_incident(app, **changes: Any) -> str:
    definition: dict[str, Any] = {
        "title": {"fr": "Coupure Douala Nord", "en": "Outage Douala North"},
        "message": {"fr": "Travaux sur la ligne de Bonaberi.", "en": "Works on the Bonaberi line."},
        "regions": ["Littoral"], "services": ["supply"], "broadcast": False,
    }
    definition.update(changes)
    return services(app).incidents.create(definition).id


def test_the_menu_starts_with_the_notice_of_my_region(app, dial):
    post_incident(app)
    lines = dial(ONE_METER).screen.splitlines()  # a prepaid meter in the Littoral
    assert lines[0] == "Info: Coupure Douala Nord"
    assert lines[2:] == MENU_WITH_NEWS  # the utility's name, then the menu with its news entry


def test_another_region_hears_no_notice(app, dial):
    post_incident(app)
    assert "Coupure" not in dial(POSTPAID_ONLY).screen  # an account in the Estuaire
    assert "Coupure" not in dial(NOBODY).screen  # no account: no region


def test_in_english_the_notice_is_the_english_title(app, dial, redis_client):
    post_incident(app)
    redis_client.hset(keys.profile(ONE_METER), "lang", "en")
    assert dial(ONE_METER).screen.splitlines()[0] == "Notice: Outage Douala North"


def test_the_notice_is_on_the_main_menu_only_and_goes_when_resolved(app, dial):
    incident = post_incident(app)
    phone = dial(ONE_METER).send("3")
    assert "Coupure" not in phone.screen  # "Mon compte"
    assert phone.send("00").screen.startswith("Info: Coupure Douala Nord")  # home again
    services(app).incidents.resolve(incident)
    assert dial(ONE_METER).screen.splitlines()[1:] == MENU


def test_the_longest_title_still_leaves_the_whole_menu(app, dial):
    post_incident(app, title={"fr": "Coupure generale sur tout le reseau Nord", "en": "General outage on the whole north grid"})
    screen = dial(ONE_METER).screen
    assert len(screen) <= USSD_GSM7_LIMIT and screen.splitlines()[2:] == MENU_WITH_NEWS, screen


def test_the_notice_costs_the_dial_no_round_trip(app, client, customers, wire):  # noqa: F811
    post_incident(app)
    services(app).incidents.active()  # this process's copy holds it: read every few seconds, not per hop
    phone = Phone(client, ONE_METER)
    with wire.hop() as first:
        phone.dial()
    assert phone.screen.startswith("Info: Coupure Douala Nord")
    assert len(first) == 2, shown(first)  # the lock with the reads (the profile's regions among them), the save


def test_the_dial_reads_the_regions_field_the_customer_base_writes():
    from state.sessions import PROFILE_FIELDS
    from utility.customers import PROFILE_REGIONS

    assert PROFILE_FIELDS == ("lang", PROFILE_REGIONS)

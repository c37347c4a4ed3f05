"""A made-up customer base in Cameroon and Gabon, to try Guichet without a utility's file.

The same ``n`` and ``seed`` give the same customers. The first accounts are fixed, so
the README can name the phone numbers to dial with (DEMO_PHONES); the rest are drawn
at random: names, regions, phones (some holders have several accounts),
prepaid meters and postpaid bills. Every text is plain ASCII, so it fits GSM-7 screens.
"""
from __future__ import annotations

import datetime
import random

from utility.customers import Account, ImportResult, RedisCustomerBase
from utility.meters import with_check_digit

PHONE_ONE_METER = "+237699000001"
PHONE_SEVERAL_ACCOUNTS = "+237699000002"
PHONE_GABON_POSTPAID = "+24107000003"

DEMO_PHONES: dict[str, str] = {
    PHONE_ONE_METER: "one prepaid meter (Cameroon)",
    PHONE_SEVERAL_ACCOUNTS: "two prepaid meters and a postpaid bill due (Cameroon)",
    PHONE_GABON_POSTPAID: "a postpaid bill due (Gabon)",
}

REGIONS = {
    "CM": ("Centre", "Littoral", "Ouest", "Nord", "Sud-Ouest", "Nord-Ouest", "Adamaoua", "Est", "Extreme-Nord", "Sud"),
    "GA": ("Estuaire", "Haut-Ogooue", "Ogooue-Maritime", "Woleu-Ntem", "Ngounie", "Moyen-Ogooue"),
}

FIRST_NAMES = {
    "CM": (
        "Achille", "Aminatou", "Boris", "Brigitte", "Carine", "Christelle", "Delphine", "Emmanuel",
        "Fadimatou", "Gaelle", "Hamadou", "Ibrahim", "Jean", "Joseph", "Larissa", "Marie",
        "Moussa", "Nadege", "Oumarou", "Paul", "Pauline", "Rodrigue", "Samuel", "Serge",
        "Therese", "Yannick", "Zenabou",
    ),
    "GA": (
        "Arsene", "Brice", "Flavienne", "Ghislain", "Herve", "Jocelyne", "Landry", "Mireille",
        "Nadine", "Patrice", "Prisca", "Rodrigue", "Stevie", "Sylvie", "Ulrich", "Yolande",
    ),
}

FAMILY_NAMES = {
    "CM": (
        "Abena", "Atangana", "Ayuk", "Bello", "Djoumessi", "Ekane", "Essomba", "Etoundi", "Fotso",
        "Fouda", "Kamga", "Manga", "Mballa", "Mbarga", "Nana", "Ndjock", "Njoya", "Nkoulou",
        "Owona", "Tabi", "Tchamba", "Tchoupo", "Wandji",
    ),
    "GA": (
        "Boussougou", "Ekomi", "Ella", "Ibinga", "Koumba", "Mabika", "Mapangou", "Mba", "Mintsa",
        "Moussavou", "Mouele", "Mve", "Ndong", "Nguema", "Nzamba", "Nze", "Obame", "Ogandaga", "Ondo",
    ),
}

# Tariffs of the random accounts and their shares; "social" is a subsidised prepaid tariff.
TARIFFS = ("prepaid", "social", "postpaid")
TARIFF_SHARES = (0.55, 0.10, 0.35)
MIN_CUSTOMERS = 5  # the fixed accounts behind DEMO_PHONES
SHARED_PHONE_SHARE = 0.12  # accounts of a holder who already has one (a second meter, a shop)


def demo_accounts(n: int, seed: int = 2024, today: datetime.date | None = None) -> list[Account]:
    """``n`` demo accounts: the fixed ones behind DEMO_PHONES first, then random ones.

    Bills fall due around ``today`` (default: the real today), so they read as current
    whenever the demo runs; everything else depends on ``seed`` only, and a smaller
    base is the start of a larger one.
    """
    today = today or datetime.date.today()
    if n < MIN_CUSTOMERS:
        raise ValueError(f"the demo base has at least {MIN_CUSTOMERS} customers (the ones behind DEMO_PHONES)")
    fixed = _fixed_accounts(today)
    rng = random.Random(seed)
    accounts = list(fixed)
    # Holders (phone, name, region) so far; a holder's accounts are numbered close together.
    holders: dict[str, list[tuple[str, str, str]]] = {"CM": [], "GA": []}
    for index in range(len(fixed) + 1, n + 1):
        country = "CM" if rng.random() < 0.75 else "GA"
        if holders[country] and rng.random() < SHARED_PHONE_SHARE:
            phone, name, region = rng.choice(holders[country][-50:])
        else:
            phone = _new_phone(rng, country)
            name = f"{rng.choice(FIRST_NAMES[country])} {rng.choice(FAMILY_NAMES[country])}"
            region = rng.choice(REGIONS[country])
            holders[country].append((phone, name, region))
        tariff = rng.choices(TARIFFS, TARIFF_SHARES)[0]
        balance, due_date = 0, None
        if tariff == "postpaid" and rng.random() < 0.8:  # the others have paid their last bill
            balance = rng.randrange(1_500, 95_000, 50)
            due_date = today + datetime.timedelta(days=rng.randint(-20, 30))
        accounts.append(
            Account(
                account_number=_account_number(country, index),
                meter_number="" if tariff == "postpaid" else _meter_number(index),
                name=name,
                phone=phone,
                region=region,
                tariff=tariff,
                balance_due=balance,
                due_date=due_date,
            )
        )
    return accounts


def seed_demo(base: RedisCustomerBase, n: int) -> ImportResult:
    """Write ``n`` demo customers to ``base`` (again: the same customers, updated)."""
    return base.upsert(demo_accounts(n))


def _fixed_accounts(today: datetime.date) -> list[Account]:
    """The accounts behind DEMO_PHONES: keep DEMO_PHONES and the README in step with them."""
    in_10_days = today + datetime.timedelta(days=10)
    in_6_days = today + datetime.timedelta(days=6)
    one, several, gabon = PHONE_ONE_METER, PHONE_SEVERAL_ACCOUNTS, PHONE_GABON_POSTPAID
    return [
        Account("CM-1000001", _meter_number(1), "Jean Mbarga", one, "Centre", "prepaid", 0, None),
        Account("CM-1000002", _meter_number(2), "Aminatou Bello", several, "Littoral", "prepaid", 0, None),
        Account("CM-1000003", _meter_number(3), "Aminatou Bello", several, "Littoral", "social", 0, None),
        Account("CM-1000004", "", "Aminatou Bello", several, "Littoral", "postpaid", 18_450, in_10_days),
        Account("GA-1000005", "", "Sylvie Nze", gabon, "Estuaire", "postpaid", 27_300, in_6_days),
    ]


def _account_number(country: str, index: int) -> str:
    return f"{country}-{1_000_000 + index}"


def _meter_number(index: int) -> str:
    """An 11-digit DRN unique to the account's index (up to ten million accounts)."""
    return with_check_digit(f"014{index:07d}")


def _new_phone(rng: random.Random, country: str) -> str:
    while True:
        if country == "CM":  # 9 digits after +237, mobiles start with 65-69
            phone = f"+2376{rng.choice('5789')}{rng.randrange(10**7):07d}"
        else:  # 8 digits after +241, mobiles start with 06 or 07
            phone = f"+2410{rng.choice('67')}{rng.randrange(10**6):06d}"
        if phone not in DEMO_PHONES:
            return phone

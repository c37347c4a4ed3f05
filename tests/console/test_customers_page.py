"""An operator finds a customer, and imports the customer file from the console."""
from __future__ import annotations

import io

from tests.ussd.conftest import ONE_METER, SEVERAL
from utility.customers import RedisCustomerBase

HEADER = "account_number,meter_number,name,phone,region,tariff,balance_due,due_date\n"


def upload(console, text: str):
    return console.post("/console/customers", {"file": (io.BytesIO(text.encode()), "clients.csv")},
                        content_type="multipart/form-data")


def test_find_a_phones_accounts_masked(console, customers):
    page = console.get("/console/customers", query_string={"q": SEVERAL}).text
    found = page.split('id="found"')[1].split("</table>")[0]
    assert found.count("<tr><td>") == 3  # two meters and a bill account
    assert SEVERAL not in found and "****102" in found
    assert "Fotso Kamga Alain" in found


def test_find_by_meter_or_account(console, customers):
    assert "Mballa Ateba Jeanne" in console.get("/console/customers?q=1000000001").text
    assert "Aucun client pour" in console.get("/console/customers?q=999").text


def test_import_a_customer_file(app, console):
    answer = upload(console, HEADER + f"C-9,,Ngo Bassa Marie,{ONE_METER},Littoral,postpaid,1500,2026-12-31\n")
    assert answer.status_code == 200
    assert "1 client(s) ajouté(s), 0 mis à jour." in answer.text
    assert RedisCustomerBase(_redis(app)).account("C-9") is not None


def test_one_bad_line_refuses_the_whole_file_with_its_line_number(app, console):
    answer = upload(console, HEADER + f"C-9,,Ngo Bassa Marie,{ONE_METER},Littoral,postpaid,1500,2026-12-31\n"
                    "C-10,,Eto'o Samuel,not-a-phone,Littoral,postpaid,10,2026-12-31\n")
    assert answer.status_code == 422
    errors = answer.text.split('id="import-errors"')[1].split("</ul>")[0]
    assert "Ligne 3" in errors and "phone" in errors
    assert RedisCustomerBase(_redis(app)).account("C-9") is None  # nothing imported


def test_an_import_without_a_file_is_refused(console):
    answer = console.post("/console/customers", {}, content_type="multipart/form-data")
    assert answer.status_code == 400 and "Choisissez un fichier." in answer.text


def _redis(app):
    from state.store import get_redis

    return get_redis(app)

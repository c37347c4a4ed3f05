"""Customers: find one by phone, meter or account; import a customer file (the same whole-file
check and line-numbered errors as POST /admin/customers)."""
from __future__ import annotations

from flask import render_template, request

from state.store import get_redis
from utility import admin, customer_csv
from utility.console import bp, t
from utility.console.auth import signed_in
from utility.customers import Account, RedisCustomerBase, mask_phone, mask_tail
from utility.gate import upload


def find(number: str) -> list[Account]:
    """The accounts of a phone, or the one account a meter or an account number names."""
    base = RedisCustomerBase(get_redis())
    found = base.accounts_for_phone(number)
    for one in (base.account(number), base.account_for_meter(number)):
        if one is not None and one not in found:
            found.append(one)
    return found


@bp.get("/customers")
@signed_in
def customers() -> str:
    query = request.args.get("q", "").strip()[:64]
    return render_template("console/customers.html", query=query, found=find(query) if query else [],
                           mask_phone=mask_phone, mask_tail=mask_tail)


@bp.post("/customers")
@upload  # MAX_UPLOAD_LENGTH: a whole customer base
@signed_in
def import_customers() -> tuple[str, int]:
    sent = request.files.get("file")
    if sent is None or not sent.filename:
        admin.audit_detail("customer import: no file")
        return _page(problem=t("customers.no_file")), 400
    try:
        accounts = customer_csv.parse_customers(customer_csv.decode(sent.read()))
    except customer_csv.CustomerFileError as exc:
        admin.audit_detail(f"customer import refused: {len(exc.errors) + exc.more} bad line(s), "
                           f"the first on line {exc.errors[0].line}")
        return _page(errors=exc.errors, more=exc.more), 422
    result = RedisCustomerBase(get_redis()).upsert(accounts)
    admin.audit_detail(f"customer import: imported {result.imported}, updated {result.updated}")
    return _page(notice=t("customers.imported", imported=result.imported, updated=result.updated)), 200


def _page(**shown: object) -> str:
    return render_template("console/customers.html", query="", found=[], mask_phone=mask_phone,
                           mask_tail=mask_tail, **shown)

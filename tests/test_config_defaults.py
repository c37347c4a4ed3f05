"""One source for configuration defaults (issue 8): each default is stated once, in the
DEFAULTS of the package that reads it (app.DEFAULTS merges them), and each package parses
its settings once per app into a frozen dataclass."""
from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

import app as guichet
import sms
from sms import outbox
from utility import campaigns, payments, vending
from utility.payments import demo, mtn_momo, poller
from utility.services import services
from utility.vending.builtin import StsSettings
from utility.vending.xmlvend import XmlVendBackend

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted([ROOT / "app.py", *(path for package in ("ussd", "sms", "state", "utility")
                                     for path in (ROOT / package).rglob("*.py"))])
PACKAGE_DEFAULTS = {"sms": sms.DEFAULTS, "utility.vending": vending.DEFAULTS, "utility.payments": payments.DEFAULTS,
                    "utility.campaigns": campaigns.DEFAULTS}
SETTING = re.compile(r"[A-Z][A-Z0-9_]+")  # a configuration key: GUICHET_<SETTING>


def test_no_default_is_stated_by_two_packages() -> None:
    owner: dict[str, str] = {}
    for package, defaults in PACKAGE_DEFAULTS.items():
        for name in defaults:
            assert name not in owner, f"{name} has a default in {owner[name]} and in {package}"
            owner[name] = package


def _app_defaults_literal() -> ast.Dict:
    tree = ast.parse((ROOT / "app.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "DEFAULTS":
            assert isinstance(node.value, ast.Dict)
            return node.value
    raise AssertionError("app.DEFAULTS is not a dict literal any more")


def test_the_app_merges_the_package_defaults_without_stating_them_again() -> None:
    literal = _app_defaults_literal()
    own = {key.value for key in literal.keys if isinstance(key, ast.Constant)}
    for package, defaults in PACKAGE_DEFAULTS.items():
        assert not own & defaults.keys(), f"app.DEFAULTS states again what {package}.DEFAULTS states"
        assert {name: guichet.DEFAULTS[name] for name in defaults} == defaults, f"app.DEFAULTS overrides {package}'s"


def _literal(node: ast.expr) -> bool:
    """A constant that states a value: not None, "", 0 or False (those only say "unset")."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and node.value not in (None, "", 0, False)


def _setting_read(node: ast.expr) -> str | None:
    """The key when ``node`` is ``<config>.get("KEY", ...)``, or ``os.environ.get("GUICHET_KEY", ...)``
    (other variables, HOST or PORT, are the launcher's, not settings)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
            and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
        return None
    key = node.args[0].value
    if ast.unparse(node.func.value) == "os.environ":
        key = key.removeprefix("GUICHET_") if key.startswith("GUICHET_") else ""
    return key if SETTING.fullmatch(key) else None


def _repeated_defaults(path: Path) -> Iterator[str]:
    """``config.get("KEY", <literal>)`` and ``config.get("KEY") or <literal>``: a default
    stated where the setting is read, a second time or instead of in a DEFAULTS."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and (key := _setting_read(node)) and len(node.args) > 1 and _literal(node.args[1]):
            yield f"{where}: .get({key!r}, {ast.unparse(node.args[1])})"
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            for left, right in zip(node.values, node.values[1:], strict=False):
                if (key := _setting_read(left)) and _literal(right):
                    yield f"{where}: .get({key!r}) or {ast.unparse(right)}"


def test_no_setting_is_read_with_a_default_of_its_own() -> None:
    repeated = [found for path in SHIPPED for found in _repeated_defaults(path)]
    assert repeated == [], "state these defaults in their package's DEFAULTS, and read them from there"


def test_the_scan_finds_a_repeated_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    module = tmp_path / "module.py"
    module.write_text('a = config.get("SMS_TIMEOUT", 10)\nb = float(config.get("SMS_TIMEOUT") or 10.0)\n'
                      'c = config.get("SMS_FILE") or ""\nd = record.get("state", "queued")\n'
                      'e = os.environ.get("GUICHET_SMS_TIMEOUT", "10")\nf = os.environ.get("PORT", "8000")\n')
    assert sorted(found.split(": ", 1)[1] for found in _repeated_defaults(module)) == [
        ".get('SMS_TIMEOUT') or 10.0", ".get('SMS_TIMEOUT', '10')", ".get('SMS_TIMEOUT', 10)"]


# -- settings parsed from a mapping that lacks a setting get the app's default -----------------------
def test_each_settings_class_takes_what_a_mapping_lacks_from_the_defaults() -> None:
    assert outbox.Settings.from_config({}) == outbox.Settings.from_config(guichet.DEFAULTS)
    assert vending.VendingSettings.from_config({}) == vending.VendingSettings.from_config(guichet.DEFAULTS)
    assert poller.settings_from({}) == poller.settings_from(guichet.DEFAULTS) == poller.PollSettings()
    assert demo.settings_from({}) == demo.settings_from(guichet.DEFAULTS) == demo.DemoSettings()


def test_dataclass_and_constructor_defaults_are_the_package_defaults() -> None:
    demo_key = bytes.fromhex(vending.DEMO_VENDING_KEY)
    assert StsSettings(vending_key=demo_key) == vending.sts_settings({})
    credentials = {"MTN_MOMO_SUBSCRIPTION_KEY": "k", "MTN_MOMO_API_USER": "u", "MTN_MOMO_API_KEY": "a"}
    parsed = mtn_momo.settings_from(credentials)
    assert mtn_momo.MomoSettings("k", "u", "a", currency=parsed.currency) == parsed
    xmlvend = vending.VendingSettings.from_config({"VENDING_BACKEND": "xmlvend"}).xmlvend
    assert xmlvend is not None
    signature = inspect.signature(XmlVendBackend)
    assert {name: signature.parameters[name].default for name in ("timeout", "retries", "currency", "resource")} == {
        name: getattr(xmlvend, name) for name in ("timeout", "retries", "currency", "resource")}


# -- parsed once per app -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("settings_of", "parse"),
    [
        (outbox.settings_of, (outbox.Settings, "from_config")),
        (vending.settings_of, (vending.VendingSettings, "from_config")),
        (poller.poll_settings, (poller, "settings_from")),
    ],
)
def test_settings_are_parsed_once_per_app(
    app: Flask, monkeypatch: pytest.MonkeyPatch, settings_of: object, parse: tuple[object, str]
) -> None:
    owner, name = parse
    original = getattr(owner, name)
    calls: list[object] = []

    def counted(*args: object) -> object:
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(owner, name, counted)
    assert callable(settings_of)
    first = settings_of(app)
    services(app)  # builds the vending backend from the same settings
    assert settings_of(app) is first and dataclasses.is_dataclass(first)
    assert first.__dataclass_params__.frozen
    assert len(calls) == 1

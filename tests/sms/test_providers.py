"""The SMS client and its providers, each driven through its real SDK against a stand-in."""
from __future__ import annotations

import json
import logging
import socket
import threading

import pytest

from sms.client import OutgoingSms, SendResult, SmsClient, SmsError, mask_digits
from sms.providers import PROVIDERS, ConfigError, client_from_config
from sms.providers.africastalking import AfricasTalkingClient
from sms.providers.console import ConsoleClient
from sms.providers.file import FileClient
from sms.providers.twilio import TwilioClient
from tests.sms.fixtures import africastalking_config, twilio_config

PHONE = "+237699000001"
TOKEN_BODY = "Code: 2371 6100 5011 8319 4197"


def sms(body: str = "Bonjour", to: str = PHONE, message_id: str = "m1") -> OutgoingSms:
    return OutgoingSms(message_id, to, body)


# -- Africa's Talking ---------------------------------------------------------------------------
def test_africastalking_sends_through_the_sdk(africastalking_standin):
    client = client_from_config(africastalking_config(africastalking_standin))
    assert isinstance(client, AfricasTalkingClient)
    result = client.send(sms("Payé 5 000 FCFA"))
    (received,) = africastalking_standin.received
    assert (received.username, received.to, received.message, received.sender, received.api_key) == (
        "guichet", PHONE, "Payé 5 000 FCFA", "GUICHET", "at-test-key"
    )
    assert result == SendResult("africastalking", received.message_id, "Success", "XAF 20.0000")


@pytest.mark.parametrize("code", [100, 101, 102])
def test_africastalking_accepted_codes(africastalking_standin, code):
    africastalking_standin.answer_status(code)
    result = client_from_config(africastalking_config(africastalking_standin)).send(sms())
    assert result.provider_id.startswith("ATXid_")


@pytest.mark.parametrize("code", [401, 402, 403, 404, 405, 406, 407, 409])
def test_africastalking_refusals_are_final(africastalking_standin, code):
    africastalking_standin.answer_status(code)
    with pytest.raises(SmsError) as caught:
        client_from_config(africastalking_config(africastalking_standin)).send(sms())
    assert not caught.value.retryable and not caught.value.maybe_sent
    assert str(code) in caught.value.message


@pytest.mark.parametrize("code", [500, 501, 502])
def test_africastalking_gateway_errors_are_retryable(africastalking_standin, code):
    africastalking_standin.answer_status(code)
    with pytest.raises(SmsError) as caught:
        client_from_config(africastalking_config(africastalking_standin)).send(sms())
    assert caught.value.retryable


@pytest.mark.parametrize("answer", ["http500", "text"])
def test_africastalking_http_error_or_non_json_answer_is_retryable(africastalking_standin, answer):
    africastalking_standin.then(answer)
    with pytest.raises(SmsError) as caught:
        client_from_config(africastalking_config(africastalking_standin)).send(sms())
    assert caught.value.retryable and not caught.value.maybe_sent


def test_africastalking_request_refused_as_a_whole_is_final(africastalking_standin):
    africastalking_standin.then("empty")
    with pytest.raises(SmsError) as caught:
        client_from_config(africastalking_config(africastalking_standin)).send(sms())
    assert not caught.value.retryable and "InvalidSenderId" in caught.value.message


def test_africastalking_wrong_key_is_retryable(africastalking_standin):
    config = {**africastalking_config(africastalking_standin), "AFRICASTALKING_API_KEY": "wrong"}
    with pytest.raises(SmsError) as caught:
        client_from_config(config).send(sms())
    assert caught.value.retryable and not africastalking_standin.received


def test_a_lost_answer_is_maybe_sent_not_retryable(africastalking_standin):
    # The stand-in takes the message and never answers in time: it may well be on its way.
    africastalking_standin.then("hold")
    client = AfricasTalkingClient("guichet", "at-test-key", api_url=africastalking_standin.url, read_timeout=0.2)
    with pytest.raises(SmsError) as caught:
        client.send(sms())
    assert caught.value.maybe_sent and not caught.value.retryable
    assert len(africastalking_standin.received) == 1


def test_no_connection_is_retryable():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = AfricasTalkingClient("guichet", "k", api_url=f"http://127.0.0.1:{port}")
    with pytest.raises(SmsError) as caught:
        client.send(sms())
    assert caught.value.retryable and not caught.value.maybe_sent


def test_a_number_the_sdk_refuses_is_final(africastalking_standin):
    with pytest.raises(SmsError) as caught:
        client_from_config(africastalking_config(africastalking_standin)).send(sms(to="699000001"))
    assert not caught.value.retryable and not africastalking_standin.requests


def test_the_sandbox_username_still_goes_to_the_configured_url(africastalking_standin):
    africastalking_standin.username = "sandbox"
    config = {**africastalking_config(africastalking_standin), "AFRICASTALKING_USERNAME": "sandbox"}
    client_from_config(config).send(sms())
    assert len(africastalking_standin.received) == 1


# -- Twilio -------------------------------------------------------------------------------------------
def test_twilio_sends_through_the_sdk(twilio_standin):
    client = client_from_config({**twilio_config(twilio_standin), "PUBLIC_URL": "https://guichet.example.org/"})
    assert isinstance(client, TwilioClient)
    result = client.send(sms("Hello"))
    (received,) = twilio_standin.received
    assert (received.to, received.body, received.sender) == (PHONE, "Hello", "+15005550006")
    assert received.status_callback == "https://guichet.example.org/sms/twilio/status"
    assert result == SendResult("twilio", received.sid, "queued", "")


def test_twilio_messaging_service_sid(twilio_standin):
    service = "MG" + "a" * 32
    client_from_config({**twilio_config(twilio_standin), "TWILIO_FROM": service}).send(sms())
    (received,) = twilio_standin.received
    assert received.messaging_service_sid == service and received.sender is None
    assert received.status_callback is None  # no PUBLIC_URL, no callback


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (400, 21211, False),  # invalid 'To'
        (400, 21610, False),  # unsubscribed recipient
        (429, 20429, True),
        (500, 20500, True),
        (503, 20503, True),
        (401, 20003, True),  # our credentials: retry while someone fixes them
    ],
)
def test_twilio_errors(twilio_standin, status, code, retryable):
    twilio_standin.fail_next(status, code)
    with pytest.raises(SmsError) as caught:
        client_from_config(twilio_config(twilio_standin)).send(sms())
    assert caught.value.retryable is retryable and not caught.value.maybe_sent
    assert str(code) in caught.value.message


# -- console, file, registry ------------------------------------------------------------------------
def test_console_logs_masked(caplog):
    caplog.set_level(logging.INFO)
    result = client_from_config({"SMS_PROVIDER": "console"}).send(sms(TOKEN_BODY))
    assert result.provider == "console"
    logged = caplog.text
    assert "****001" in logged and PHONE[1:] not in logged
    assert "2371 6100" not in logged and "8319 4197" not in logged


def test_file_provider_writes_json_lines(tmp_path):
    path = tmp_path / "sms.jsonl"
    client = client_from_config({"SMS_PROVIDER": "file", "SMS_FILE": str(path)})
    assert isinstance(client, FileClient)
    client.send(sms("Payé", message_id="a"))
    client.send(sms("x" * 161, message_id="b"))
    first, second = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines())
    assert (first["to"], first["body"], first["segments"], first["message_id"]) == (PHONE, "Payé", 1, "a")
    assert second["segments"] == 2 and second["at"].endswith("+00:00")


def test_file_provider_concurrent_writers_never_interleave(tmp_path):
    path = tmp_path / "sms.jsonl"
    clients = [FileClient(path), FileClient(path)]  # two apps in one process, one file
    body = "y" * 1500  # long lines are where unlocked writes tear

    def write(n: int) -> None:
        for i in range(25):
            clients[n % 2].send(sms(body, message_id=f"{n}-{i}"))

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 200
    assert {json.loads(line)["message_id"] for line in lines} == {f"{n}-{i}" for n in range(8) for i in range(25)}


def test_file_provider_needs_a_file():
    with pytest.raises(ConfigError, match="GUICHET_SMS_FILE"):
        client_from_config({"SMS_PROVIDER": "file"})


def test_unknown_provider_and_missing_credentials():
    with pytest.raises(ConfigError, match="unknown SMS provider"):
        client_from_config({"SMS_PROVIDER": "carrier-pigeon"})
    with pytest.raises(ConfigError, match="GUICHET_AFRICASTALKING_USERNAME"):
        client_from_config({"SMS_PROVIDER": "africastalking"})
    with pytest.raises(ConfigError, match="GUICHET_TWILIO_ACCOUNT_SID"):
        client_from_config({"SMS_PROVIDER": "twilio"})


def test_numeric_settings_from_the_environment_stay_text(africastalking_standin):
    # GUICHET_* values are parsed as JSON: an all-digit key or sender id arrives as an int.
    africastalking_standin.api_key = "20880"
    config = {**africastalking_config(africastalking_standin), "AFRICASTALKING_API_KEY": 20880,
              "AFRICASTALKING_SENDER_ID": 20880}
    client_from_config(config).send(sms())
    assert africastalking_standin.received[0].sender == "20880"


def test_every_registered_provider_builds(tmp_path, africastalking_standin, twilio_standin):
    configs = {
        "africastalking": africastalking_config(africastalking_standin),
        "twilio": twilio_config(twilio_standin),
        "console": {"SMS_PROVIDER": "console"},
        "file": {"SMS_PROVIDER": "file", "SMS_FILE": str(tmp_path / "f.jsonl")},
    }
    assert set(configs) == set(PROVIDERS)
    for name, config in configs.items():
        assert client_from_config(config).name == name


class Broken(SmsClient):
    name = "broken"

    def try_send(self, sms: OutgoingSms) -> SendResult:
        raise KeyError("a bug after the call went out")


def test_an_unexpected_error_is_wrapped_as_maybe_sent():
    with pytest.raises(SmsError) as caught:
        Broken().send(sms())
    assert caught.value.maybe_sent and not caught.value.retryable
    assert isinstance(caught.value.__cause__, KeyError)


def test_mask_digits():
    assert mask_digits("Code: 2371 6100 5011 8319 4197, tel +237699000001, 5 000 FCFA") == (
        "Code: ****, tel +****, 5 000 FCFA"
    )


def test_console_client_is_the_default():
    assert isinstance(client_from_config({}), ConsoleClient)

"""Whatever a gateway posts, the answer is a 400 or a screen within the limits."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms.gsm import fits_screen

FIELDS = ["sessionId", "serviceCode", "phoneNumber", "networkCode", "text"]
plausible = {
    "sessionId": st.one_of(st.text(max_size=40), st.sampled_from(["ATUid_a", "ATUid_b"])),
    "serviceCode": st.one_of(st.text(max_size=12), st.sampled_from(["*384#", "*384*5#", "*384*5*1#"])),
    "phoneNumber": st.one_of(st.text(max_size=20), st.sampled_from(["+237699000102", "+24107000103"])),
    "networkCode": st.text(max_size=8),
    "text": st.one_of(
        st.text(max_size=60),
        st.lists(st.sampled_from(["0", "00", "1", "2", "3", "5", "6", "98", "x", ""]), max_size=12).map("*".join),
    ),
}
forms = st.fixed_dictionaries({}, optional=plausible)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(form=forms)
def test_any_form_gets_a_400_or_a_screen_that_fits(client, customers, form):
    response = client.post("/ussd/africastalking", data=form)
    body = response.get_data(as_text=True)
    assert response.status_code in (200, 400), body
    if response.status_code == 200:
        assert body[:4] in ("CON ", "END ")
        assert fits_screen(body[4:]), body
    else:
        assert body.strip() and "\n" not in body.strip()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300), st.dictionaries(st.text(max_size=10), st.text(max_size=20)).map(str).map(str.encode)))
def test_any_hubtel_body_gets_a_400_or_an_answer(client, body):
    response = client.post("/ussd/hubtel", data=body, content_type="application/json")
    assert response.status_code in (200, 400)

"""The audit log page: who did what, when, from where; reading it is audited too."""
from __future__ import annotations

AUTH = {"Authorization": "Bearer test-admin-key"}


def test_an_api_call_and_a_console_click_read_alike_in_the_audit(app, client, console):
    client.post("/admin/backends/vending", json={"state": "down"}, headers=AUTH)  # a script, through the API
    console.post("/console/backends/vending", {"state": "up"})  # a person, through the console
    console.get("/console/audit")
    page = console.get("/console/audit").text  # the first reading is in the trail by now
    rows = page.split('id="audit"')[1].split("</table>")[0].split("<tr")[2:]
    assert "GET /console/audit" in rows[0]
    assert "POST /console/backends/vending" in rows[1] and "vending up" in rows[1]
    assert "POST /admin/backends/vending" in rows[2] and "vending down" in rows[2]
    assert all("<td>admin</td>" in row for row in rows[:4])
    assert "127.0.0.1" in rows[1]


def test_the_audit_is_paged_with_a_stable_cursor(app, console):
    for _ in range(60):
        console.post("/console/backends/billing", {"state": "down"})
    first = console.get("/console/audit").text
    older = first.split('href="/console/audit?before=')[1].split('"')[0]
    second = console.get(f"/console/audit?before={older}").text
    assert second.count("<tr") - 1 >= 10


def test_a_bad_cursor_is_a_400_with_the_reason(console):
    answer = console.get("/console/audit?before=yesterday")
    assert answer.status_code == 400 and "before is the id of an audit entry" in answer.text

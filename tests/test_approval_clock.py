"""The approval clock: business days, then reminders, escalation and expiry with a clock the tests control.

The gateway is real (SMTP in, the deliver queue out to the sink); only the
moment `approvals.tick` thinks it is comes from the test.
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo

import httpx2
import pytest

from archive import audit, records
from milter import cli
from quarantine import approvals, holds
from quarantine.approval_clock import add_business_days
from tests.conftest import EXAMPLE_DIRECTORY
from tests.support.approval_support import (
    CSRF,
    approval_config,
    broadcast,
    delivered_to,
    links_in,
    notices,
    parsed,
    send,
    text_of,
    wait_for_notice,
)
from tests.support.servers import wait_until

NEW_YORK = zoneinfo.ZoneInfo("America/New_York")
SECOND = dt.timedelta(seconds=1)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=NEW_YORK)


# -- business days ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (at(2026, 11, 20, 18), 1, at(2026, 11, 23, 18)),  # Friday evening: Monday evening, not Saturday
        (at(2026, 11, 20, 18), 2, at(2026, 11, 24, 18)),  # ... and escalation on Tuesday
        (at(2026, 11, 20, 18), 10, at(2026, 12, 4, 18)),  # ten business days: two weeks
        (at(2026, 11, 21, 10), 1, at(2026, 11, 24, 0)),  # held on Saturday: counting starts Monday morning
        (at(2026, 11, 16, 9, 30), 1, at(2026, 11, 17, 9, 30)),  # an ordinary Monday
        (at(2026, 10, 30, 18), 1, at(2026, 11, 2, 18)),  # over the end of daylight saving: still 18:00 local
    ],
)
def test_business_days_skip_weekends_in_the_agency_time_zone(start, days, expected):
    assert add_business_days(start, days, NEW_YORK) == expected.astimezone(dt.UTC)


def test_holidays_do_not_count():
    thanksgiving = [dt.date(2026, 11, 26), dt.date(2026, 11, 27)]
    assert add_business_days(at(2026, 11, 25, 12), 1, NEW_YORK, thanksgiving) == at(2026, 11, 30, 12).astimezone(dt.UTC)
    assert add_business_days(at(2026, 11, 26, 12), 1, NEW_YORK, thanksgiving) == at(2026, 12, 1, 0).astimezone(dt.UTC)


# -- reminders, escalation, expiry ----------------------------------------------


def held_requests(runtime) -> list[tuple[dict, dict]]:  # type: ignore[no-untyped-def]
    with runtime.database.read() as connection:
        return [
            (hold, approvals.request_for(connection, hold["id"]))
            for hold in holds.listing(connection, "approval", state=None)
        ]


def test_reminder_escalation_and_expiry_follow_the_business_day_clock(make_gateway, sink):
    gateway = make_gateway(approval_config({"approvals": {"timezone": "America/New_York"}}))
    runtime = gateway.runtime
    send(gateway.port, broadcast(subject="Fall picnic"), "sortiz@example.gov", ["all-staff@example.gov"])
    send(gateway.port, broadcast(subject="Parking lot repaving"), "sortiz@example.gov", ["all-staff@example.gov"])
    wait_until(lambda: len(notices(sink, "approval-request")) == 4 or None, what="the first approval requests")
    (picnic, picnic_request), (parking, parking_request) = held_requests(runtime)
    first = approvals.schedule_of(runtime.config.settings.approvals, picnic_request["held_at"])
    plan = approvals.schedule_of(runtime.config.settings.approvals, parking_request["held_at"])  # held a moment later
    fallback = approvals.Decider("mvasquenza@example.gov", "mvasquenza@example.gov", "console")

    # Before a business day has passed nothing happens, and the fallback approver may not decide yet.
    done = approvals.tick(runtime, first.remind - SECOND)
    assert (done.reminded, done.escalated, done.expired) == ([], [], [])
    with pytest.raises(approvals.DecisionRefused, match="Dana Whitfield"):
        approvals.approve(runtime, picnic["id"], fallback, now=first.escalate - SECOND)

    # One business day: Dana and Lee are reminded once, with fresh links.
    assert approvals.tick(runtime, plan.remind).reminded == [picnic["id"], parking["id"]]
    assert approvals.tick(runtime, plan.remind + SECOND).reminded == []
    reminders = wait_until(
        lambda: (len(notices(sink, "approval-reminder")) == 4 and notices(sink, "approval-reminder")) or None,
        what="the reminders",
    )
    assert sorted(str(m["To"]) for m in reminders) == ["dwhitfield@example.gov"] * 2 + ["lpark@example.gov"] * 2
    assert all("still waiting for your decision" in " ".join(text_of(m).split()) for m in reminders)

    # Two business days: the fallback approver is asked too, and may now decide; it is audited.
    done = approvals.tick(runtime, plan.escalate)
    assert done.escalated == [picnic["id"], parking["id"]] and done.reminded == []
    escalations = wait_until(
        lambda: (
            (
                len(notices(sink, "approval-escalation", "mvasquenza@example.gov")) == 2
                and notices(sink, "approval-escalation", "mvasquenza@example.gov")
            )
            or None
        ),
        what="the escalations",
    )
    assert "has waited 2 business days" in " ".join(text_of(escalations[0]).split())
    picnic_link = next(links_in(m) for m in escalations if "Fall picnic" in m["Subject"])
    with httpx2.Client(follow_redirects=False, timeout=30) as browser:
        page = browser.get(picnic_link["approve"])
        assert page.status_code == 200
        done_page = browser.post(
            picnic_link["approve"],
            data={
                "csrf_token": CSRF.search(page.text).group(1),  # type: ignore[union-attr]
                "decision": "approve",
            },
        )
        assert done_page.status_code == 200, done_page.text
    [data] = wait_until(lambda: delivered_to(sink, "all-staff@example.gov") or None, what="the picnic broadcast")
    plain = parsed(data).get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert "Fall picnic" in parsed(data)["Subject"] and plain.rstrip().endswith(
        "Sam Ortiz\nFor: Michael Vasquenza – MHIS Director"
    )

    # Ten business days: the other is rejected, its sender told, its links dead; it stays in the archive.
    assert approvals.tick(runtime, first.expire - SECOND).expired == []
    done = approvals.tick(runtime, plan.expire)
    assert done.expired == [parking["id"]]
    told = wait_for_notice(sink, "approval-expired", "sortiz@example.gov")
    assert "Parking lot repaving" in told["Subject"] and "waited 10 business days" in " ".join(text_of(told).split())
    dana_link = next(
        links_in(m) for m in notices(sink, "approval-request", "dwhitfield@example.gov") if "Parking" in m["Subject"]
    )
    with httpx2.Client(follow_redirects=False, timeout=30) as browser:
        assert browser.get(dana_link["approve"]).status_code == 410
    with runtime.database.read() as connection:
        expired = holds.get(connection, parking["id"])
        assert (expired["state"], expired["decided_by"]) == ("rejected", "system")
        assert approvals.request_for(connection, parking["id"])["outcome"] == "expired"
        assert [r["kind"] for r in records.records_for(connection, parking["message_id"])] == ["received"]
        escalated = list(audit.entries(connection, action="approval.escalate"))
        assert len(escalated) == 2 and all(e["actor"] == "system" for e in escalated)
    assert approvals.tick(runtime, plan.expire + dt.timedelta(days=30)).expired == []
    time.sleep(0.3)
    assert len(delivered_to(sink, "all-staff@example.gov")) == 1


def test_with_no_approver_on_file_the_admins_are_told_and_only_an_admin_decides(make_gateway, sink, tmp_path, capsys):
    folder = tmp_path / "nobody"
    gateway = make_gateway(approval_config({"approvals": {"fallback_approvers": []}}), folder=folder)
    (folder / "directory.toml").write_text(
        EXAMPLE_DIRECTORY.read_text().replace('head = "jdoe@example.gov"\n', "")
        + '\n[[people]]\naddress = "pat@example.gov"\nname = "Pat Quinn"\ndepartment = "clerk"\n'
    )
    gateway.gateway.reload()
    runtime = gateway.runtime
    send(gateway.port, broadcast(sender="Pat Quinn <pat@example.gov>"), "pat@example.gov", ["all-staff@example.gov"])
    held = wait_for_notice(sink, "approval-held", "pat@example.gov")
    assert "the agency's mail administrators (no approver is on file)" in " ".join(text_of(held).split())
    nobody = wait_for_notice(sink, "approval-nobody", "postmaster@example.gov")
    assert "fallback_approvers" in text_of(nobody)
    [(hold, request)] = held_requests(runtime)
    plan = approvals.schedule_of(runtime.config.settings.approvals, request["held_at"])
    assert approvals.tick(runtime, plan.escalate).escalated == []  # nobody to escalate to: it just waits
    for address in ("jdoe@example.gov", "dwhitfield@example.gov", "mvasquenza@example.gov"):
        with pytest.raises(approvals.DecisionRefused):
            approvals.approve(runtime, hold["id"], approvals.Decider(address, address, "console"))
    time.sleep(0.3)
    assert delivered_to(sink, "all-staff@example.gov") == []

    assert (
        cli.main(
            [
                "--config",
                str(gateway.config.path),
                "approvals",
                "approve",
                hold["message_id"],
                "--note",
                "urgent, per the CIO",
            ]
        )
        == 0
    )
    assert "Approved" in capsys.readouterr().out
    [data] = wait_until(
        lambda: delivered_to(sink, "all-staff@example.gov") or None, what="the admin-approved broadcast"
    )
    message = parsed(data)
    plain = message.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert plain.rstrip().endswith("Pat Quinn\nApproved by the agency's mail administrators")
    assert "(admin)" in message["X-AUP-Approved-By"]


def test_the_clock_runs_as_a_gateway_job_and_does_nothing_early(make_gateway, sink):
    from milter.server import JOBS

    [job] = [job for job in JOBS if job.name == "approvals"]
    assert job.run is approvals.run_clock and job.every <= 600
    gateway = make_gateway(approval_config())
    send(gateway.port, broadcast(), "sortiz@example.gov", ["all-staff@example.gov"])
    wait_for_notice(sink, "approval-request", "dwhitfield@example.gov")
    job.run(gateway.runtime)  # now: less than a business day has passed
    [(hold, request)] = held_requests(gateway.runtime)
    assert hold["state"] == "pending" and (request["reminded_at"], request["fallback_at"]) == (None, None)

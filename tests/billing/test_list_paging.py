"""The staff lists that grow without end (bill runs, call imports) come a page at a time, newest first,
still scoped to the partner, at the same number of queries whatever a page holds."""

import datetime
import re

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from billing import views
from billing.demo import uk_tariff
from billing.models import BillRun, CallImport
from billing.services.bill_runs import bill_run_cancel, bill_run_create
from fusion_site.templatetags.paging import page_query
from tests.billing.factories import Call, billing_profile, cli_of, import_calls, month
from tests.factories import UserFactory

RUN_LINK = re.compile(r'href="/billing/runs/(\d+)/"')
IMPORT_LINK = re.compile(r'href="/billing/imports/(\d+)/"')


def _runs(partner, agent, months: range) -> list[BillRun]:
    """Runs, one a month of 2025, newest first (as the list shows them); each cancelled, as a partner has
    one open run at a time."""
    billing_profile(partner, default_tariff=uk_tariff(), invoice_prefix="P-")
    made = []
    for start, end in (month(2025, number) for number in months):
        run = bill_run_create(partner=partner, period_start=start, period_end=end, actor=agent)
        bill_run_cancel(bill_run=run, actor=agent, reason="Made for the list")
        made.append(run)
    return made[::-1]


def _listed(client, url: str, pattern: re.Pattern[str], **query: str) -> list[int]:
    response = client.get(url, query)
    assert response.status_code == 200
    return [int(pk) for pk in pattern.findall(response.content.decode())]


def test_the_bill_runs_come_a_page_at_a_time_newest_first(client, partner, agent, monkeypatch):
    monkeypatch.setattr(views, "BILL_RUNS_PER_PAGE", 2)
    runs = [run.pk for run in _runs(partner, agent, range(1, 6))]
    client.force_login(agent)

    pages = [_listed(client, "/billing/runs/", RUN_LINK, page=str(n)) for n in (1, 2, 3, 4)]

    assert pages == [runs[0:2], runs[2:4], runs[4:5], runs[4:5]]  # past the end: the last page
    html = client.get("/billing/runs/", {"page": "2"}).content.decode()
    assert 'href="?page=3">Next</a>' in html and 'href="?page=1">Previous</a>' in html


def test_the_bill_runs_list_keeps_to_the_partner(client, partner, other_partner, agent):
    own = [run.pk for run in _runs(partner, agent, range(1, 3))]
    other_agent = UserFactory(role=Role.BILLING_AGENT, partner=other_partner)
    _runs(other_partner, other_agent, range(1, 3))
    client.force_login(agent)

    assert _listed(client, "/billing/runs/", RUN_LINK) == own


def test_a_page_of_bill_runs_costs_the_same_queries_whatever_it_holds(
    client, partner, agent, monkeypatch, django_assert_max_num_queries
):
    _runs(partner, agent, range(1, 6))
    client.force_login(agent)
    client.get("/billing/runs/")
    monkeypatch.setattr(views, "BILL_RUNS_PER_PAGE", 1)
    with CaptureQueriesContext(connection) as one_run:
        assert len(_listed(client, "/billing/runs/", RUN_LINK)) == 1
    monkeypatch.setattr(views, "BILL_RUNS_PER_PAGE", 5)

    with django_assert_max_num_queries(len(one_run)):
        assert len(_listed(client, "/billing/runs/", RUN_LINK)) == 5


def test_the_call_imports_come_a_page_at_a_time_newest_first(
    client, partner, agent, customer, clock, monkeypatch, django_assert_max_num_queries
):
    billing_profile(partner, default_tariff=uk_tariff(), invoice_prefix="P-")
    made = []
    for _ in range(3):
        made.append(import_calls(partner, [Call(cli=cli_of(customer))], actor=agent).pk)
        clock.shift(datetime.timedelta(minutes=1))
    newest_first = made[::-1]
    client.force_login(agent)
    client.get("/billing/imports/")
    monkeypatch.setattr(views, "CALL_IMPORTS_PER_PAGE", 1)
    with CaptureQueriesContext(connection) as one_import:
        first = _listed(client, "/billing/imports/", IMPORT_LINK)
    monkeypatch.setattr(views, "CALL_IMPORTS_PER_PAGE", 2)

    with django_assert_max_num_queries(len(one_import)):
        page_one = _listed(client, "/billing/imports/", IMPORT_LINK)
    page_two = _listed(client, "/billing/imports/", IMPORT_LINK, page="2")

    assert CallImport.objects.count() == 3
    assert (first, page_one, page_two) == (newest_first[0:1], newest_first[0:2], newest_first[2:3])


@pytest.mark.parametrize(
    ("url", "number", "expected"),
    [
        ("/billing/runs/", 2, "?page=2"),
        ("/billing/runs/?q=Acme+Ltd&page=5", 6, "?q=Acme+Ltd&page=6"),
        ("/billing/runs/?status=draft&status=approved", 1, "?status=draft&status=approved&page=1"),
    ],
)
def test_a_page_link_keeps_the_rest_of_the_query(url, number, expected):
    assert page_query(RequestFactory().get(url), number) == expected


def _bacs_imports(partner, count: int) -> list[int]:
    """Imported reports as the list reads them (their content is another test's business), newest first."""
    from django.utils import timezone

    from billing.models import BacsReportImport

    made = [
        BacsReportImport.objects.create(
            partner=partner,
            kind="ARUDD",
            service_user_number=f"{partner.pk:06d}",
            report_id=f"ARUDD/{partner.pk:06d}/{n}",
            file_name=f"arudd-{n}.xml",
            sha256=f"{n:064d}",
            imported_at=timezone.now() + datetime.timedelta(minutes=n),
        ).pk
        for n in range(count)
    ]
    return made[::-1]


def test_the_bacs_report_imports_come_a_page_at_a_time(
    client, partner, other_partner, finance, monkeypatch, django_assert_max_num_queries
):
    newest_first = _bacs_imports(partner, 3)
    _bacs_imports(other_partner, 2)
    link = re.compile(r'href="/billing/bacs-reports/(\d+)/"')
    client.force_login(finance)
    client.get("/billing/bacs-reports/")
    monkeypatch.setattr(views, "BACS_REPORTS_PER_PAGE", 1)
    with CaptureQueriesContext(connection) as one_report:
        first = _listed(client, "/billing/bacs-reports/", link)
    monkeypatch.setattr(views, "BACS_REPORTS_PER_PAGE", 2)

    with django_assert_max_num_queries(len(one_report)):
        page_one = _listed(client, "/billing/bacs-reports/", link)
    page_two = _listed(client, "/billing/bacs-reports/", link, page="2")

    assert (first, page_one, page_two) == (newest_first[0:1], newest_first[0:2], newest_first[2:3])

import datetime
import io
from decimal import Decimal

from accounts.models import Role
from billing import services
from billing.models import BillRun, CallRecord, Invoice
from tests.billing.factories import billing_profile, uk_tariff
from tests.factories import full_customer

CSV = """cli,dialled_number,start_time,duration,call_type,call_reference
{cli},01134960000,2026-10-05T10:00:00,61,voice,R1
{cli},07700100200,2026-10-05T11:00:00,30,voice,R2
{cli},0035387123456,2026-10-06T11:00:00,120,voice,R3
01134969999,07700100200,2026-10-05T11:00:00,30,voice,R4
{cli},0999,2026-10-05T11:00:00,30,voice,R5
bad,07700100200,2026-10-05T11:00:00,30,voice,R6
"""


def test_smoke(make_user, partner, django_capture_on_commit_callbacks):
    tariff = uk_tariff()
    billing_profile(partner, default_tariff=tariff)
    customer = full_customer(partner)
    line = customer.lines.get()
    agent = make_user(Role.BILLING_AGENT)
    imp = services.call_import_run(
        partner=partner, stream=io.StringIO(CSV.format(cli=line.cli)), file_name="x.csv", actor=agent
    )
    print(imp.__dict__)
    for c in CallRecord.objects.order_by("call_reference"):
        print(c.call_reference, c.status, c.suspense_reason, c.band, c.cost)
    run = services.bill_run_create(
        partner=partner,
        period_start=datetime.date(2026, 10, 1),
        period_end=datetime.date(2026, 10, 31),
        actor=agent,
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.bill_run_start_calculation(bill_run=run, actor=agent)
    run.refresh_from_db()
    print(run.status, run.chunks_total, run.chunks_done)
    for inv in Invoice.objects.all():
        print(
            inv.customer_reference,
            inv.net,
            inv.vat,
            inv.gross,
            [(l.description, l.amount) for l in inv.lines.all()],
        )
    assert run.status == BillRun.Status.CALCULATED

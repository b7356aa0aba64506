"""The processors register: seeded from the old code list, edited by the DPO and administrators with a
reason kept in history, checked against the data map (errors name the field), and read by the Record of
Processing Activities, the public privacy notice and the Art. 15 report."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import AuditEvent, Role
from privacy import data_map
from privacy.access_report import processing_rows
from privacy.models import Processor
from privacy.services import governance

SEEDED = {"hosting", "mail", "bacs", "wholesale", "hmrc"}


def _form(processor: Processor, **changes) -> dict:
    data = {
        "key": processor.key,
        "name": processor.name,
        "role": processor.role,
        "service": processor.service,
        "activities": processor.activities,
        "data_categories": processor.data_categories,
        "data_description": processor.data_description,
        "contract_date": processor.contract_date.isoformat() if processor.contract_date else "",
        "review_date": processor.review_date.isoformat() if processor.review_date else "",
        "location": processor.location,
        "transfer_mechanism": processor.transfer_mechanism,
        "sub_processors": processor.sub_processors,
        "security_assurances": processor.security_assurances,
        "reason": "Annual review",
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_the_migration_seeds_the_register_from_the_old_code_list(db):
    rows = {row.key: row for row in Processor.objects.all()}
    assert set(rows) == SEEDED
    assert rows["bacs"].activities == ["Billing and payment"]
    assert rows["mail"].transfer_mechanism == Processor.TransferMechanism.ADEQUACY
    assert rows["hmrc"].role == Processor.Role.RECIPIENT
    # Every seeded activity is one of the data map's, and every declared recipient key is in the register.
    names = {activity.name for activity in data_map.ACTIVITIES}
    assert all(set(row.activities) <= names for row in rows.values())
    assert rows["hosting"].history.get().history_change_reason.startswith("Seeded")


def test_editing_a_processor_keeps_history_with_the_reason_and_an_audit_event(client, dpo):
    client.force_login(dpo)
    mail = Processor.objects.get(key="mail")
    response = client.post(
        reverse("privacy:processor_edit", args=[mail.pk]),
        _form(
            mail,
            name="Postmark Mail Ltd",
            location="United States",
            transfer_mechanism=Processor.TransferMechanism.IDTA,
            contract_date="2026-01-15",
            review_date="2027-01-15",
            reason="Moved to a US carrier under an IDTA",
        ),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    mail.refresh_from_db()
    assert (mail.name, mail.transfer_mechanism) == ("Postmark Mail Ltd", "idta")
    latest = mail.history.order_by("-history_id").first()
    assert latest.history_change_reason == "Moved to a US carrier under an IDTA"
    assert latest.history_user == dpo
    event = AuditEvent.objects.filter(action="privacy.processor_changed").latest("id")
    assert "transfer_mechanism" in event.detail["fields"]
    page = client.get(reverse("privacy:processor", args=[mail.pk])).content.decode()
    assert "Moved to a US carrier under an IDTA" in page
    assert "Transactional mail carrier → Postmark Mail Ltd" in page


def test_a_change_without_a_reason_is_refused_on_the_reason_field(client, dpo):
    client.force_login(dpo)
    bacs = Processor.objects.get(key="bacs")
    response = client.post(reverse("privacy:processor_edit", args=[bacs.pk]), _form(bacs, reason=" "))
    assert response.status_code == 200
    assert response.context["form"].errors["reason"]
    with pytest.raises(Exception, match="reason"):
        governance.processor_update(processor=bacs, actor=dpo, reason="", name="Other")
    assert Processor.objects.get(key="bacs").name == "Bacs approved bureau"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"activities": ["Telepathy"]}, "activities"),
        ({"data_categories": ["horoscopes"]}, "data_categories"),
        # A processor acts under a contract (Art. 28(3)): the seeded rows have no date until one is given.
        ({"contract_date": "", "name": "Line Co"}, "contract_date"),
        ({"contract_date": "2026-05-01", "review_date": "2026-04-01"}, "review_date"),
        ({"transfer_mechanism": "handshake"}, "transfer_mechanism"),
    ],
)
def test_validation_names_the_field(client, dpo, changes, field):
    client.force_login(dpo)
    wholesale = Processor.objects.get(key="wholesale")
    response = client.post(
        reverse("privacy:processor_edit", args=[wholesale.pk]), _form(wholesale, **changes)
    )
    assert response.status_code == 200
    assert field in response.context["form"].errors, response.context["form"].errors
    assert Processor.objects.get(key="wholesale").history.count() == 1


def test_an_activity_missing_from_the_data_map_is_refused_by_the_service(dpo):
    with pytest.raises(Exception) as refused:
        governance.processor_create(
            actor=dpo,
            reason="New carrier",
            key="sms",
            name="SMS gateway",
            service="Sends login codes",
            activities=["Not an activity"],
            location="United Kingdom",
            contract_date=datetime.date(2026, 1, 1),
        )
    assert "activities" in refused.value.message_dict
    assert not Processor.objects.filter(key="sms").exists()


def test_the_public_notice_and_the_ropa_read_the_register(client, dpo, notice):
    bacs = Processor.objects.get(key="bacs")
    governance.processor_update(
        processor=bacs,
        actor=dpo,
        reason="New bureau",
        name="Albany Bacs Bureau Ltd",
        contract_date=datetime.date(2026, 3, 1),
    )
    public = client.get(reverse("website:privacy_notice")).content.decode()
    assert "Who we share your data with" in public
    assert "Albany Bacs Bureau Ltd" in public and "Bacs approved bureau" not in public
    assert "HM Revenue &amp; Customs" in public
    # An earlier version is kept as it was: no register under it.
    earlier = client.get(reverse("website:privacy_notice_version", args=[notice.version])).content.decode()
    assert "Who we share your data with" not in earlier

    client.force_login(dpo)
    ropa = client.get(reverse("privacy:data_map")).content.decode()
    assert "Albany Bacs Bureau Ltd" in ropa
    rows = client.post(reverse("privacy:data_map_csv")).content.decode()
    assert "Albany Bacs Bureau Ltd (Processor (Art. 28)): Submits Direct Debit collections" in rows


def test_the_access_report_names_recipients_from_the_register(db, dpo):
    mail = Processor.objects.get(key="mail")
    governance.processor_update(
        processor=mail,
        actor=dpo,
        reason="Renamed",
        name="Courier Mail plc",
        contract_date=datetime.date(2026, 1, 1),
    )
    contact = next(row for row in processing_rows() if row.what == "Contact")
    assert "Courier Mail plc" in contact.recipients


def test_a_new_processor_is_created_from_its_page(client, make_user):
    admin = make_user(Role.ADMINISTRATOR)
    client.force_login(admin)
    response = client.post(
        reverse("privacy:processor_new"),
        {
            "key": "sms",
            "name": "SMS gateway",
            "role": "processor",
            "service": "Sends login codes",
            "activities": ["Logins and audit"],
            "data_categories": ["contact", "account"],
            "contract_date": "2026-02-01",
            "review_date": "2027-02-01",
            "location": "Ireland",
            "transfer_mechanism": "adequacy",
            "reason": "New supplier for login codes",
        },
    )
    created = Processor.objects.get(key="sms")
    assert response.status_code == 302 and response["Location"] == reverse(
        "privacy:processor", args=[created.pk]
    )
    assert created.history.get().history_change_reason == "New supplier for login codes"


def test_the_list_and_detail_take_a_fixed_number_of_queries(client, dpo):
    client.force_login(dpo)
    client.get(reverse("privacy:processors"))
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("privacy:processors"))
    for n in range(5):
        Processor.objects.create(
            key=f"extra-{n}", name=f"Extra {n}", service="s", location="United Kingdom", activities=[]
        )
    with CaptureQueriesContext(connection) as many:
        assert client.get(reverse("privacy:processors")).status_code == 200
    assert len(many) == len(few)


@pytest.mark.parametrize(
    "role", [Role.BILLING_AGENT, Role.SUPPORT_AGENT, Role.FINANCE_MANAGER, Role.CUSTOMER]
)
def test_others_are_refused_reading_and_writing(client, make_user, role):
    client.force_login(make_user(role))
    hosting = Processor.objects.get(key="hosting")
    assert client.get(reverse("privacy:processors")).status_code == 403
    assert client.get(reverse("privacy:processor", args=[hosting.pk])).status_code == 403
    response = client.post(
        reverse("privacy:processor_edit", args=[hosting.pk]), _form(hosting, name="Hacked")
    )
    assert response.status_code == 403
    assert Processor.objects.get(key="hosting").name == "Cloud hosting provider (UK region)"

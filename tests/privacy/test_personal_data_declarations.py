"""Each app declares its own models' personal data exactly once (fusion_site.personal_data), and the data map,
the Record of Processing, the erasure and the retention policies the job runs all say what the declarations
say: one source, so they cannot drift apart."""

import dataclasses

import pytest
from django.apps import apps
from django.db import models
from django.test.utils import isolate_apps

from accounts import personal_data as accounts_declarations
from billing import personal_data as billing_declarations
from fusion_site import personal_data
from fusion_site.fields import EncryptedTextField
from fusion_site.personal_data import (
    Anchor,
    Category,
    Declaration,
    ErasureAction,
    LawfulBasis,
    PersonalField,
    Retention,
)
from privacy import data_map, ropa
from privacy import personal_data as privacy_declarations
from privacy.data_map import base_model, declaration_problems, personal_fields_of
from privacy.erasure import erasure_preview
from privacy.models import RetentionPolicy
from privacy.retention import HANDLERS

DECLARED = (
    *accounts_declarations.DECLARATIONS,
    *billing_declarations.DECLARATIONS,
    *privacy_declarations.DECLARATIONS,
)


def _referee_declaration(*names: str) -> Declaration:
    return Declaration(
        "privacy.Referee",
        "referees of job applicants",
        "Take up references",
        ErasureAction.DELETE,
        (Retention("6 months after the decision", Anchor.DECISION, 6),),
        LawfulBasis.CONSENT,
        tuple(PersonalField(name, Category.CONTACT, "Reach the referee") for name in names),
    )


def test_every_model_with_a_personal_field_has_exactly_one_declaration():
    assert declaration_problems() == []
    # What the apps registered from their ready() is what their modules declare, once each.
    assert [item.model for item in personal_data.declarations()] == [item.model for item in DECLARED]


def test_a_model_declared_twice_is_noticed_and_refused():
    contact = personal_data.declaration("accounts.Contact")
    assert contact is not None
    assert declaration_problems([*DECLARED, contact]) == ["accounts.Contact: declared 2 times"]
    with pytest.raises(ValueError, match="declared twice"):
        personal_data.register(dataclasses.replace(contact, purpose="A second opinion"))
    assert personal_data.declaration("accounts.Contact") is contact


def test_a_declaration_removed_is_noticed_for_the_model_and_its_history():
    without_contacts = [item for item in DECLARED if item.model != "accounts.Contact"]
    assert declaration_problems(without_contacts) == [
        "accounts.Contact: no declaration for name, email, email_index, phone, phone_index",
        "accounts.HistoricalContact: no declaration for name, email, email_index, phone, phone_index",
    ]


@isolate_apps("privacy")
def test_a_model_added_without_a_declaration_is_noticed():
    class Referee(models.Model):
        notes = EncryptedTextField()
        email_index = models.CharField(max_length=64)
        asked_on = models.DateField()

        class Meta:
            app_label = "privacy"

        def __str__(self) -> str:
            return "referee"

    assert declaration_problems(DECLARED, candidates=[Referee]) == [
        "privacy.Referee: no declaration for notes, email_index"
    ]
    declared = [*DECLARED, _referee_declaration("notes", "email_index")]
    assert declaration_problems(declared, candidates=[Referee]) == []


def test_a_kept_model_names_its_law_and_every_model_says_how_long():
    with pytest.raises(ValueError, match="names the law"):
        dataclasses.replace(_referee_declaration("notes"), action=ErasureAction.KEEP)
    with pytest.raises(ValueError, match="how long"):
        dataclasses.replace(_referee_declaration("notes"), retention=())


def test_the_data_map_shows_each_declarations_action_and_period():
    mapped = {entry.label for entry in data_map.DATA_MAP}
    for item in personal_data.declarations():
        entry = data_map.model_entry(item.model)
        if not item.fields:
            assert item.model not in mapped
            continue
        assert entry is not None, item.model
        assert [field.field for field in entry.fields] == [field.name for field in item.fields]
        for field in entry.fields:
            assert (field.action, field.retention_rules, field.kept_under) == (
                item.action,
                item.retention,
                item.kept_under,
            ), f"{item.model}.{field.field}"


def test_the_record_of_processing_gives_each_declared_rule(db):  # the processors come from the register
    rows = [row for row in ropa.csv_rows()[1:] if row[0] == "field"]
    assert len(rows) == sum(len(item.fields) for item in personal_data.declarations())
    for row in rows:
        item = personal_data.declaration(row[1])
        assert item is not None, row[1]
        assert row[7] == "; ".join(rule.anchor.label for rule in item.retention), row[1]
        assert row[8] == "; ".join(str(rule.months) for rule in item.retention), row[1]
        assert row[9] == item.action.label, row[1]
    # The website's table holds three kinds of record; the register gives each kind its own rule.
    cv = next(row for row in rows if row[1] == "privacy.WebsiteSubmission" and row[2] == "cv")
    assert cv[7].split("; ") == [Anchor.CREATED.label, Anchor.DECISION.label, Anchor.UNSUBSCRIBED.label]
    assert cv[8] == "12; 6; 0"


@pytest.mark.django_db
def test_the_seeded_retention_policies_run_what_the_declarations_say():
    seeded = {policy.key: (policy.anchor, policy.months) for policy in RetentionPolicy.objects.all()}
    declared: dict[str, set[tuple[str, int]]] = {}
    for item in personal_data.declarations():
        for rule in item.retention:
            if rule.policy:
                declared.setdefault(rule.policy, set()).add((rule.anchor, rule.months))
    assert all(len(rules) == 1 for rules in declared.values()), declared
    assert seeded == {key: rules.pop() for key, rules in declared.items()}
    assert set(seeded) <= set(HANDLERS), "every seeded policy has a handler that runs it"
    for item in personal_data.declarations():
        if item.purge is not None:
            assert any(rule.policy for rule in item.retention), (
                f"{item.model}: its purge runs under no policy"
            )


@pytest.mark.django_db
def test_erasure_does_to_each_table_what_its_declaration_says(customer):
    """The preview lists the statements erasure runs: each on a declared model's own rows (or its history)
    deletes or anonymises as the data map says; kept models are counted as kept, under their law."""
    preview = erasure_preview(customer=customer)
    checked = set()
    for table in preview.erased:
        model = base_model(apps.get_model(table.table))
        item = personal_data.declaration(model._meta.label)
        if item is None:
            # A link row erased with a declared model's rows (a billed call's link, a user's grant).
            assert personal_fields_of(model) == [], f"{table.table}: personal, yet declared by no one"
            continue
        if item.action != ErasureAction.KEEP:
            assert table.action == item.action, table.table
            checked.add(item.model)
    assert {
        "accounts.Contact",
        "accounts.Customer",
        "billing.CallRecord",
        "privacy.PrivacyRequest",
    } <= checked
    kept = {item.table: item.law for item in preview.kept}
    assert kept == {
        item.model: item.kept_under for item in personal_data.declarations() if item.kept is not None
    }
    assert all(item.action == ErasureAction.KEEP for item in personal_data.declarations() if item.kept)

"""`manage.py load_modulus_weights` installs a newly published Vocalink table: it is validated first,
a bad file is refused naming its line and the version in use stays; the new version is used at once
(no restart), recorded in the manifest and in the audit trail."""

import io
import json
import re
import shutil

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from accounts import modulus, services, validation
from accounts.models import AuditEvent, PaymentDetails
from tests.factories import CustomerFactory

SHIPPED = validation.DEFAULT_MODULUS_DATA_DIR


@pytest.fixture
def data_dir(tmp_path, settings):
    """A copy of the shipped tables, made the ones in use."""
    directory = tmp_path / "modulus"
    shutil.copytree(SHIPPED, directory)
    settings.MODULUS_DATA_DIR = directory
    return directory


def run(*args, **options) -> str:
    out = io.StringIO()
    call_command("load_modulus_weights", *args, stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


def published(tmp_path, name: str, drop_prefix: str = "") -> str:
    """A 'newly published' table: the shipped one without the rows starting with ``drop_prefix``."""
    lines = (SHIPPED / "valacdos-v8-50.txt").read_text(encoding="ascii").splitlines(keepends=True)
    path = tmp_path / name
    path.write_text("".join(line for line in lines if not (drop_prefix and line.startswith(drop_prefix))))
    return str(path)


def failing_pair_saved(customer) -> PaymentDetails:
    return services.payment_details_set(
        customer=customer,
        actor=None,
        account_holder="Jane Smith",
        sort_code="08-99-99",
        account_number="66374959",  # spec test case 29: fails the modulus 10 check of 089000-089999
        mandate_reference="DD1",
    )


def test_without_a_path_it_says_which_version_is_in_use(data_dir):
    assert run().startswith("Modulus weight table in use: version 8.50, 1151 rows, installed ")


def test_a_new_version_is_installed_recorded_and_used_at_once(db, data_dir, tmp_path):
    customer = CustomerFactory()
    with pytest.raises(ValidationError):
        failing_pair_saved(customer)

    output = run(published(tmp_path, "valacdos-v851.txt", drop_prefix="089000"))

    assert output.strip() == "Modulus weight table 8.51 installed: 1150 rows, 21 sort code substitutions."
    manifest = json.loads((data_dir / "modulus.json").read_text())
    assert (manifest["version"], manifest["rows"], manifest["weights"]["file"]) == (
        "8.51",
        1150,
        "valacdos-v8-51.txt",
    )
    assert manifest["substitutions"]["file"] == "scsubtab-v8-50.txt"  # none given: the one in use stays
    assert (data_dir / "valacdos-v8-50.txt").exists()  # the previous version stays beside it
    event = AuditEvent.objects.get(action="modulus.weights_installed")
    assert event.detail == {"version": "8.51", "rows": 1150, "file": "valacdos-v851.txt"}
    # The new table has no row for 089999: the pair cannot be checked now, so it is accepted.
    assert validation.modulus_tables().version == "8.51"
    assert failing_pair_saved(customer).account_number == "66374959"


def test_a_new_substitution_table_is_installed_with_it(db, data_dir, tmp_path):
    substitutions = tmp_path / "scsubtab-v851.txt"
    substitutions.write_text("938173 938017\r\n")
    run(published(tmp_path, "valacdos-v851.txt"), substitutions=str(substitutions))
    tables = validation.modulus_tables()
    assert (tables.version, dict(tables.substitutions)) == ("8.51", {"938173": "938017"})


def test_a_bad_table_is_refused_naming_the_line_and_the_old_one_stays(db, data_dir, tmp_path):
    path = tmp_path / "valacdos-v8-51.txt"
    lines = (SHIPPED / "valacdos-v8-50.txt").read_text(encoding="ascii").splitlines(keepends=True)
    lines[41] = lines[41].replace("MOD", "MDD", 1)
    path.write_text("".join(lines))
    manifest_before = (data_dir / "modulus.json").read_bytes()

    with pytest.raises(CommandError) as raised:
        run(str(path))

    assert "valacdos-v8-51.txt: line 42: the algorithm 'MDD1" in str(raised.value)
    assert str(raised.value).endswith("The version in use is unchanged.")
    assert (data_dir / "modulus.json").read_bytes() == manifest_before
    assert not (data_dir / "valacdos-v8-51.txt").exists()
    assert validation.modulus_tables().version == "8.50"
    assert not AuditEvent.objects.filter(action="modulus.weights_installed").exists()
    with pytest.raises(ValidationError):
        failing_pair_saved(CustomerFactory())


def test_a_bad_substitution_table_keeps_the_old_version(db, data_dir, tmp_path):
    substitutions = tmp_path / "scsubtab.txt"
    substitutions.write_text("938173 938017\r\n938289\r\n")
    with pytest.raises(CommandError, match="line 2: expected two 6-digit sort codes"):
        run(published(tmp_path, "valacdos-v851.txt"), substitutions=str(substitutions))
    assert modulus.installed_manifest(data_dir)["version"] == "8.50"


def test_the_version_comes_from_the_option_when_the_name_has_none(db, data_dir, tmp_path):
    path = published(tmp_path, "VALACDOS.txt")
    with pytest.raises(CommandError, match=re.escape("No version in the file name 'VALACDOS.txt'")):
        run(path)
    run(path, table_version="9.00")
    assert validation.modulus_tables().version == "9.00"


def test_a_version_already_installed_with_other_contents_is_refused(db, data_dir, tmp_path):
    with pytest.raises(
        CommandError, match=re.escape("valacdos-v8-50.txt is already installed with different contents")
    ):
        run(published(tmp_path, "valacdos-v8-50.txt", drop_prefix="089000"))
    assert len(validation.modulus_tables().rows) == 1151


def test_an_unreadable_file_is_named(data_dir, tmp_path):
    with pytest.raises(CommandError, match=r"Cannot read .*valacdos-v851\.txt: No such file"):
        run(str(tmp_path / "valacdos-v851.txt"))

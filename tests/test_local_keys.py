"""The development key file: generated once with every key the product needs, and a key added to the
product later is appended to an existing file without touching the keys already there."""

import stat

from cryptography.fernet import Fernet

from fusion_site.local_keys import load_or_create_local_keys

NAMES = {"DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "BLIND_INDEX_KEY", "AUDIT_HMAC_KEYS"}


def test_a_new_file_holds_every_key_and_only_its_owner_can_read_it(tmp_path):
    path = tmp_path / ".local" / "keys.env"

    keys = load_or_create_local_keys(path)

    assert set(keys) == NAMES
    assert len(keys["AUDIT_HMAC_KEYS"]) >= 32
    Fernet(keys["FIELD_ENCRYPTION_KEYS"].encode())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_local_keys(path) == keys


def test_a_file_from_before_the_audit_key_gets_one_and_keeps_its_other_keys(tmp_path):
    path = tmp_path / "keys.env"
    path.touch(mode=0o600)
    older = "DJANGO_SECRET_KEY=secret\nFIELD_ENCRYPTION_KEYS=fernet\nBLIND_INDEX_KEY=blind"
    path.write_text(older)

    keys = load_or_create_local_keys(path)

    assert {name: keys[name] for name in NAMES - {"AUDIT_HMAC_KEYS"}} == {
        "DJANGO_SECRET_KEY": "secret",
        "FIELD_ENCRYPTION_KEYS": "fernet",
        "BLIND_INDEX_KEY": "blind",
    }
    assert len(keys["AUDIT_HMAC_KEYS"]) >= 32
    assert path.read_text().startswith(older + "\n")
    assert load_or_create_local_keys(path) == keys

"""A generated key file for development, so no key ever lives in the repository.

Used only when DEBUG is on and the environment does not provide keys. The file is created once
(mode 0600) under `.local/` (ignored by git) and reused, so data encrypted yesterday still decrypts. A key
added to the product later (the audit trail's HMAC key, say) is appended to an existing file, leaving
the keys already there untouched.
"""

import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet

GENERATORS: dict[str, Callable[[], str]] = {
    "DJANGO_SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "FIELD_ENCRYPTION_KEYS": lambda: Fernet.generate_key().decode(),
    "BLIND_INDEX_KEY": lambda: secrets.token_urlsafe(32),
    "AUDIT_HMAC_KEYS": lambda: secrets.token_urlsafe(32),
}


def _read(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}


def load_or_create_local_keys(path: Path) -> dict[str, str]:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
    values = _read(path)
    missing = {name: generate() for name, generate in GENERATORS.items() if not values.get(name)}
    if missing:
        text = path.read_text()
        with path.open("a") as file:
            file.write("" if not text or text.endswith("\n") else "\n")
            file.write("".join(f"{name}={value}\n" for name, value in missing.items()))
        values = _read(path)
    return values

"""A generated key file for development, so no key ever lives in the repository.

Used only when DEBUG is on and the environment does not provide keys. The file is created once
(mode 0600) under `.local/` (ignored by git) and reused, so data encrypted yesterday still decrypts.
"""

import secrets
from pathlib import Path

from cryptography.fernet import Fernet


def load_or_create_local_keys(path: Path) -> dict[str, str]:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        values = {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "BLIND_INDEX_KEY": secrets.token_urlsafe(32),
        }
        path.touch(mode=0o600)
        path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {name.strip(): value.strip() for name, value in pairs}

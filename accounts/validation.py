"""Validation and normalisation of the personal data the accounts app stores.

Each validator raises a ValidationError whose message names what is wrong; model ``full_clean``
attaches it to the field, so forms, services and the admin all report the same field.
"""

import functools
import re
import unicodedata
from pathlib import Path

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email as django_validate_email

from accounts import modulus

PHONE_REGION = "GB"
# The shape of a UK postcode (outward code, then inward code), per the government data standard
# BS 7666; no maintained library covers this, and the rule is stable.
_POSTCODE_RE = re.compile(
    r"^(GIR ?0AA|[A-PR-UWYZ][A-HK-Y]?[0-9][0-9A-HJKMNPR-Y]? ?[0-9][ABD-HJLNP-UW-Z]{2})$"
)


def normalise_phone(value: str) -> str:
    """Return the number in E.164 (+447700900123); raise if it is not a valid number."""
    try:
        parsed = phonenumbers.parse(value, PHONE_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError("Enter a valid phone number.", code="invalid_phone") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError("Enter a valid phone number.", code="invalid_phone")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def national_phone_digits(e164: str) -> str:
    """Digits as dialled within the UK (07700900123), used for display and masking: a UK number's
    national form is the trunk prefix 0 and the rest. Any other number is shown as stored, in E.164."""
    return "0" + e164[3:] if e164.startswith("+44") else e164


def normalise_email(value: str) -> str:
    """The address trimmed and lower-cased: we treat addresses as case-insensitive throughout (lookups,
    the blind index, suppression), as every mailbox provider we send to does."""
    value = value.strip()
    django_validate_email(value)
    return value.lower()


def normalise_postcode(value: str) -> str:
    """Upper-case, single space before the inward code: 'sw1a1aa' -> 'SW1A 1AA'."""
    compact = re.sub(r"\s+", "", value).upper()
    if not _POSTCODE_RE.match(compact):
        raise ValidationError("Enter a valid UK postcode.", code="invalid_postcode")
    return f"{compact[:-3]} {compact[-3:]}"


def normalise_sort_code(value: str) -> str:
    digits = re.sub(r"[\s-]", "", value)
    if not re.fullmatch(r"[0-9]{6}", digits):
        raise ValidationError("Enter a sort code of 6 digits.", code="invalid_sort_code")
    return digits


def normalise_account_number(value: str) -> str:
    digits = re.sub(r"\s", "", value)
    if not re.fullmatch(r"[0-9]{8}", digits):
        raise ValidationError("Enter an account number of 8 digits.", code="invalid_account_number")
    return digits


# Vocalink's weight and substitution tables in use, with the manifest naming them (accounts/modulus.py);
# `manage.py load_modulus_weights` installs a newly published version there.
DEFAULT_MODULUS_DATA_DIR = Path(__file__).resolve().parent / "data"


def modulus_data_dir() -> Path:
    return Path(getattr(settings, "MODULUS_DATA_DIR", DEFAULT_MODULUS_DATA_DIR))


def modulus_tables() -> modulus.ModulusTables:
    """The installed tables, read again only when the manifest changes, so a table installed by the
    command is used by running processes without a restart."""
    directory = modulus_data_dir()
    stat = (directory / modulus.MANIFEST_NAME).stat()
    return _tables_read(str(directory), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _tables_read(directory: str, mtime_ns: int, size: int) -> modulus.ModulusTables:
    return modulus.load_installed(Path(directory))


def validate_bank_details(sort_code: str, account_number: str) -> None:
    """Refuse an account number that fails Vocalink's modulus check for its sort code, naming the
    account number field (the spec, 1.2, advises checking such details with the account holder).
    Values not yet in normal form are left to the normalisers, which name what is wrong with them.
    A sort code the table does not cover cannot be checked and is accepted, as the spec says (2.2.1,
    step 1); so is a foreign currency account (exception 6)."""
    if not (re.fullmatch(r"[0-9]{6}", sort_code) and re.fullmatch(r"[0-9]{8}", account_number)):
        return
    outcome = modulus.check(sort_code, account_number, modulus_tables())
    if not outcome.accepted:
        raise ValidationError(
            {
                "account_number": ValidationError(
                    "This account number is not valid for sort code %(sort_code)s: check both with the "
                    "account holder.",
                    code="invalid_bank_details",
                    params={"sort_code": f"{sort_code[:2]}-{sort_code[2:4]}-{sort_code[4:]}"},
                )
            }
        )


# Marks that join the parts of one word (O'Brien, A.B.C.) rather than separate two words.
_WORD_JOINERS = re.compile(r"['\u2018\u2019\u02bc`.]")
_NOT_WORD = re.compile(r"[\W_]+")
# Latin letters that Unicode does not decompose into a base letter and an accent.
_UNDECOMPOSED = str.maketrans(
    {"æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "\u0131": "i"}  # dotless i
)


def name_words(value: str) -> list[str]:
    """The words of a name as search compares them: accents removed, case folded, "O'Brien" as
    "obrien", and any other punctuation ("Smith-Jones & Co.") a break between words. Distinct words,
    sorted, so a name indexes each word once."""
    decomposed = unicodedata.normalize("NFKD", value.casefold())
    bare = "".join(char for char in decomposed if not unicodedata.combining(char)).translate(_UNDECOMPOSED)
    return sorted(set(_NOT_WORD.split(_WORD_JOINERS.sub("", bare))) - {""})

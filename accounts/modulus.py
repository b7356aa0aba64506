"""UK bank account modulus checking, as Vocalink specifies it in "Validating account numbers: UK modulus
checking" (the spec; section numbers below are its own), with Vocalink's modulus weight table (VALACDOS)
and sorting code substitution table (SCSUBTAB).

Pure: no Django, no clock, no network. ``check`` answers for one sort code and account number against
``ModulusTables``; ``parse_weight_table`` and ``parse_substitution_table`` read Vocalink's text files and
name the first bad line; ``load_installed`` and ``install`` keep the versioned files and the manifest that
says which version is in use (the ``load_modulus_weights`` command calls ``install``).

A pass means the account number is possible at that sort code, not that it exists (spec 1.2, note).
"""

import bisect
import dataclasses
import enum
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

SORT_CODE_DIGITS = 6
ACCOUNT_NUMBER_DIGITS = 8
WEIGHT_POSITIONS = SORT_CODE_DIGITS + ACCOUNT_NUMBER_DIGITS  # u v w x y z a b c d e f g h
MANIFEST_NAME = "modulus.json"
VERSION_RE = re.compile(r"^[0-9]+\.[0-9]{2}$")  # Vocalink numbers versions 6.40, 8.50, ...

# Positions in the 14 digits "sort code + account number" (spec 1.3, notation u-z a-h).
_A, _B, _C, _G, _H = 6, 7, 8, 12, 13

# Exception 2 (spec 2.2.2): the weights that replace the table's when a <> 0, for g <> 9 and g = 9.
_EXCEPTION_2_WEIGHTS = (0, 0, 1, 2, 5, 3, 6, 4, 8, 7, 10, 9, 3, 1)
_EXCEPTION_2_WEIGHTS_G9 = (0, 0, 0, 0, 0, 0, 0, 0, 8, 7, 10, 9, 3, 1)
# Exception 1 (spec 2.2.2): 27 is added to the double alternate total.
_EXCEPTION_1_ADDEND = 27
# Exception 8 checks as sort code 090126; exception 9 (the Lloyds euro check) as 309634.
_EXCEPTION_8_SORT_CODE = "090126"
_EXCEPTION_9_SORT_CODE = "309634"
# Exceptions whose two rows are alternatives: the account is valid if either check passes
# (2 then 9, 10 then 11, 12 then 13; spec 2.2.2). The table gives the first of the pair first.
_EITHER_PASSES = {2: 9, 10: 11, 12: 13}
_SECOND_OF_PAIR = {second: first for first, second in _EITHER_PASSES.items()}
_KNOWN_EXCEPTIONS = range(1, 15)


class Method(enum.StrEnum):
    """The Alg column (spec 2.3.1)."""

    MOD10 = "MOD10"
    MOD11 = "MOD11"
    DBLAL = "DBLAL"


class Outcome(enum.StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    # No row covers the sort code: "there is no modulus check that can be performed. The sorting code
    # and account number should be presumed valid" (spec 2.2.1, step 1).
    NOT_IN_TABLE = "not_in_table"
    # Exception 6: a foreign currency account, which the checks cannot be used for (spec 2.2.2).
    FOREIGN_CURRENCY = "foreign_currency"

    @property
    def accepted(self) -> bool:
        return self is not Outcome.INVALID


@dataclasses.dataclass(frozen=True)
class WeightRow:
    """One line of the modulus weight table."""

    start: str
    end: str
    method: Method
    weights: tuple[int, ...]
    exception: int | None = None

    def covers(self, sort_code: str) -> bool:
        return self.start <= sort_code <= self.end


class TableError(ValueError):
    """A published file that cannot be used; ``line`` is 1-based, 0 when the file as a whole is wrong."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}" if line else message)


@dataclasses.dataclass(frozen=True)
class ModulusTables:
    version: str
    rows: tuple[WeightRow, ...]
    substitutions: Mapping[str, str]
    starts: tuple[str, ...] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "starts", tuple(row.start for row in self.rows))

    def rows_for(self, sort_code: str) -> list[WeightRow]:
        """The one or two rows for the sort code, in table order (spec 2.2.1, steps 1 and 4). The rows are
        sorted and a range is either repeated exactly or disjoint from the others (checked on parsing), so
        the rows are the run of equal ranges ending just before the first row starting after it."""
        index = bisect.bisect_right(self.starts, sort_code)
        found: list[WeightRow] = []
        while index > 0 and self.rows[index - 1].covers(sort_code):
            index -= 1
            found.insert(0, self.rows[index])
        return found


def check(sort_code: str, account_number: str, tables: ModulusTables) -> Outcome:
    """Check a six-digit sort code and eight-digit account number (already normalised to digits) as the
    spec's validation process does (spec 1.2, 2.2.1 and the exceptions of 2.2.2)."""
    if not (_is_digits(sort_code, SORT_CODE_DIGITS) and _is_digits(account_number, ACCOUNT_NUMBER_DIGITS)):
        raise ValueError("check() takes a 6-digit sort code and an 8-digit account number")
    rows = tables.rows_for(sort_code)
    if not rows:
        return Outcome.NOT_IN_TABLE
    digits = [int(char) for char in sort_code + account_number]
    if any(row.exception == 6 for row in rows) and 4 <= digits[_A] <= 8 and digits[_G] == digits[_H]:
        return Outcome.FOREIGN_CURRENCY
    first, *rest = rows
    passed = _row_passes(first, sort_code, account_number, tables)
    if not rest:
        if not passed and first.exception == 14:
            passed = _exception_14_second_check(first, sort_code, account_number)
        return Outcome.VALID if passed else Outcome.INVALID
    (second,) = rest
    if first.exception in _EITHER_PASSES:
        passed = passed or _row_passes(second, sort_code, account_number, tables)
    else:
        # Both checks must pass. That includes exception 5, although the overview diagram (spec 1.2)
        # lists 5 with the alternatives: the published test cases 23 and 24 (spec 3.1) are invalid
        # accounts that pass exactly one of the two exception 5 checks.
        passed = passed and _row_passes(second, sort_code, account_number, tables)
    return Outcome.VALID if passed else Outcome.INVALID


def _row_passes(row: WeightRow, sort_code: str, account_number: str, tables: ModulusTables) -> bool:
    digits = [int(char) for char in sort_code + account_number]
    a, c, g = digits[_A], digits[_C], digits[_G]
    exception = row.exception
    if exception == 3 and c in (6, 9):
        return True  # "If c=6 or c=9 the double alternate check does not need to be carried out."
    weights = list(row.weights)
    checked_sort_code = sort_code
    if exception == 5:
        checked_sort_code = tables.substitutions.get(sort_code, sort_code)
    elif exception == 8:
        checked_sort_code = _EXCEPTION_8_SORT_CODE
    elif exception == 9:
        checked_sort_code = _EXCEPTION_9_SORT_CODE
    if exception == 2 and a != 0:
        weights = list(_EXCEPTION_2_WEIGHTS_G9 if g == 9 else _EXCEPTION_2_WEIGHTS)
    # Exception 7: if g = 9, zeroise u-b; exception 10: the same when ab is 09 or 99 and g = 9.
    if (exception == 7 and g == 9) or (exception == 10 and account_number[:2] in ("09", "99") and g == 9):
        weights[: _B + 1] = [0] * (_B + 1)
    checked = [int(char) for char in checked_sort_code + account_number]
    total = _total(row.method, checked, weights)
    if exception == 1:
        total += _EXCEPTION_1_ADDEND
    modulus = 11 if row.method is Method.MOD11 else 10
    remainder = total % modulus
    if exception == 4:
        return remainder == int(account_number[6:])  # the check digit is gh
    if exception == 5:
        return _exception_5_check_digit(row.method, remainder, digits)
    return remainder == 0


def _total(method: Method, digits: Sequence[int], weights: Sequence[int]) -> int:
    products = [digit * weight for digit, weight in zip(digits, weights, strict=True)]
    if method is Method.DBLAL:
        # Double alternate adds the individual digits of the products (spec 1.3.1, step 3).
        return sum(sum(int(char) for char in str(product)) for product in products)
    return sum(products)


def _exception_5_check_digit(method: Method, remainder: int, digits: Sequence[int]) -> bool:
    """Exception 5: the standard check's check digit is g, the double alternate's is h (spec 2.2.2)."""
    if method is Method.DBLAL:
        h = digits[_H]
        return h == 0 if remainder == 0 else 10 - remainder == h
    g = digits[_G]
    if remainder == 0:
        return g == 0
    return remainder != 1 and 11 - remainder == g


def _exception_14_second_check(row: WeightRow, sort_code: str, account_number: str) -> bool:
    """Exception 14 (Coutts): only an 8th digit of 0, 1 or 9 may be dropped; the account number shifted
    right with a leading 0 is checked again with the same weights (spec 2.2.2)."""
    if account_number[-1] not in "019":
        return False
    shifted = "0" + account_number[:-1]
    return _total(row.method, [int(char) for char in sort_code + shifted], row.weights) % 11 == 0


def _is_digits(value: str, length: int) -> bool:
    return len(value) == length and value.isascii() and value.isdigit()


def parse_weight_table(text: str) -> tuple[WeightRow, ...]:
    """Read VALACDOS.txt (spec 2.3.2: start and end sort code, algorithm, 14 weights, an optional
    exception; fields separated by spaces). Raises TableError naming the first line that is wrong,
    including rows out of sort code order, ranges that partly overlap, more than two rows for a range,
    and exception pairs (2/9, 10/11, 12/13) that are not first and second row of the same range."""
    rows: list[WeightRow] = []
    line_numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        row = _parse_weight_line(number, line)
        if rows:
            _check_order(number, rows, row)
        rows.append(row)
        line_numbers.append(number)
    if not rows:
        raise TableError(0, "The weight table has no rows.")
    for index, row in enumerate(rows):
        if row.exception in _EITHER_PASSES:
            partner = rows[index + 1] if index + 1 < len(rows) else None
            if (
                partner is None
                or (partner.start, partner.end) != (row.start, row.end)
                or (partner.exception != _EITHER_PASSES[row.exception])
            ):
                raise TableError(
                    line_numbers[index],
                    f"exception {row.exception} must be followed by a row for the same range with "
                    f"exception {_EITHER_PASSES[row.exception]}.",
                )
        if row.exception in _SECOND_OF_PAIR and (
            index == 0 or rows[index - 1].exception != _SECOND_OF_PAIR[row.exception]
        ):
            first = _SECOND_OF_PAIR[row.exception]
            raise TableError(
                line_numbers[index], f"exception {row.exception} must follow a row with exception {first}."
            )
    return tuple(rows)


def _parse_weight_line(number: int, line: str) -> WeightRow:
    fields = line.split()
    if len(fields) not in (3 + WEIGHT_POSITIONS, 4 + WEIGHT_POSITIONS):
        raise TableError(
            number,
            f"expected 17 or 18 fields (sort codes, algorithm, 14 weights, exception), found {len(fields)}.",
        )
    start, end, method_name = fields[:3]
    for label, value in (("start sort code", start), ("end sort code", end)):
        if not _is_digits(value, SORT_CODE_DIGITS):
            raise TableError(number, f"the {label} {value!r} is not 6 digits.")
    if start > end:
        raise TableError(number, f"the range {start}-{end} ends before it starts.")
    try:
        method = Method(method_name)
    except ValueError:
        raise TableError(number, f"the algorithm {method_name!r} is not MOD10, MOD11 or DBLAL.") from None
    weights: list[int] = []
    for value in fields[3 : 3 + WEIGHT_POSITIONS]:
        if not re.fullmatch(r"-?\d{1,3}", value):
            raise TableError(number, f"the weight {value!r} is not a whole number.")
        weights.append(int(value))
    if method is Method.DBLAL and min(weights) < 0:
        raise TableError(number, "a double alternate check cannot have a negative weight.")
    exception: int | None = None
    if len(fields) == 4 + WEIGHT_POSITIONS:
        value = fields[-1]
        if not value.isdigit() or int(value) not in _KNOWN_EXCEPTIONS:
            raise TableError(number, f"the exception {value!r} is not one of 1 to 14.")
        exception = int(value)
    return WeightRow(start=start, end=end, method=method, weights=tuple(weights), exception=exception)


def _check_order(number: int, rows: list[WeightRow], row: WeightRow) -> None:
    previous = rows[-1]
    if (row.start, row.end) == (previous.start, previous.end):
        if len(rows) > 1 and (rows[-2].start, rows[-2].end) == (row.start, row.end):
            raise TableError(number, f"a third row for the range {row.start}-{row.end}; the spec allows two.")
        return
    if row.start <= previous.end:
        raise TableError(
            number,
            f"the range {row.start}-{row.end} is out of order or overlaps {previous.start}-{previous.end}.",
        )


def parse_substitution_table(text: str) -> dict[str, str]:
    """Read SCSUBTAB.txt: an original sort code and the one to check with instead (spec 2.2.2,
    exception 5)."""
    substitutions: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2 or not all(_is_digits(field, SORT_CODE_DIGITS) for field in fields):
            raise TableError(number, "expected two 6-digit sort codes (original, substitute).")
        if fields[0] in substitutions:
            raise TableError(number, f"the sort code {fields[0]} is substituted twice.")
        substitutions[fields[0]] = fields[1]
    return substitutions


# The installed tables: the versioned files and a manifest naming the ones in use.


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_installed(directory: Path) -> ModulusTables:
    """The tables the manifest in ``directory`` names; a file whose digest differs from the one the
    manifest recorded is refused rather than used."""
    manifest = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    weights = _read_recorded(directory, manifest["weights"])
    substitutions = _read_recorded(directory, manifest["substitutions"])
    return ModulusTables(
        version=manifest["version"],
        rows=parse_weight_table(weights.decode("ascii")),
        substitutions=parse_substitution_table(substitutions.decode("ascii")),
    )


def _read_recorded(directory: Path, recorded: Mapping[str, str]) -> bytes:
    data = (directory / recorded["file"]).read_bytes()
    if sha256_of(data) != recorded["sha256"]:
        raise TableError(0, f"{recorded['file']} does not match the digest recorded in {MANIFEST_NAME}.")
    return data


def installed_manifest(directory: Path) -> dict[str, object]:
    return dict(json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8")))


def install(
    directory: Path,
    *,
    version: str,
    weights: bytes,
    substitutions: bytes | None,
    installed_at: str,
    source: str = "",
) -> ModulusTables:
    """Validate the published files and make them the ones in use: each is written as
    ``valacdos-v<major>-<minor>.txt`` / ``scsubtab-v<major>-<minor>.txt`` and then the manifest is replaced
    in one rename, so a failure at any step leaves the previous version in use. Without ``substitutions``
    the substitution table in use is kept. Installing the same files again changes nothing but the date."""
    if not VERSION_RE.match(version):
        raise TableError(0, f"The version {version!r} is not of the form 8.50.")
    tables = ModulusTables(
        version=version,
        rows=parse_weight_table(_ascii(weights, "weight table")),
        substitutions=parse_substitution_table(_ascii(substitutions, "substitution table"))
        if substitutions is not None
        else {},
    )
    current = installed_manifest(directory) if (directory / MANIFEST_NAME).exists() else None
    suffix = "v" + version.replace(".", "-")
    weights_entry = _write_versioned(directory, f"valacdos-{suffix}.txt", weights)
    if substitutions is not None:
        substitutions_entry = _write_versioned(directory, f"scsubtab-{suffix}.txt", substitutions)
    elif current is not None:
        substitutions_entry = dict(current["substitutions"])  # type: ignore[call-overload]
    else:
        raise TableError(0, "No substitution table is installed yet: give one with the weight table.")
    manifest = {
        "version": version,
        "installed_at": installed_at,
        "source": source,
        "rows": len(tables.rows),
        "weights": weights_entry,
        "substitutions": substitutions_entry,
    }
    _write_atomically(directory / MANIFEST_NAME, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    return load_installed(directory)


def _ascii(data: bytes, label: str) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise TableError(line, f"the {label} has a character that is not ASCII.") from None


def _write_versioned(directory: Path, name: str, data: bytes) -> dict[str, str]:
    path = directory / name
    digest = sha256_of(data)
    if path.exists():
        if sha256_of(path.read_bytes()) != digest:
            raise TableError(0, f"{name} is already installed with different contents; give another version.")
    else:
        _write_atomically(path, data)
    return {"file": name, "sha256": digest}


def _write_atomically(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the table is read by every worker
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

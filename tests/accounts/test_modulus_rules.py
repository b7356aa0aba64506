"""Vocalink's modulus check (accounts/modulus.py) against Vocalink's own statement of it, "Validating
account numbers: UK modulus checking" (the spec), without the database: every test case the spec
publishes (3.1) and its worked examples, properties taken from the check's definitions (1.3) and the
exceptions (2.2.2), and the reading of the published text files (2.3.2), each refusal naming its line."""

import re
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from accounts import modulus, validation
from accounts.modulus import Outcome, TableError, check

TABLES = modulus.load_installed(validation.DEFAULT_MODULUS_DATA_DIR)
digits = st.text("0123456789", min_size=8, max_size=8)

# Spec 3.1, "Test data and expected results": number, sort code, account number, valid flag.
SPEC_TEST_CASES = [
    (1, "089999", "66374958", True),  # pass modulus 10
    (2, "107999", "88837491", True),  # pass modulus 11
    (3, "202959", "63748472", True),  # pass modulus 11 and double alternate
    (4, "871427", "46238510", True),  # exceptions 10 & 11: first passes, second fails
    (5, "872427", "46238510", True),  # exceptions 10 & 11: first fails, second passes
    (6, "871427", "09123496", True),  # exception 10, ab = 09 and g = 9
    (7, "871427", "99123496", True),  # exception 10, ab = 99 and g = 9
    (8, "820000", "73688637", True),  # exception 3, start of range, c = 6: second check ignored
    (9, "827999", "73988638", True),  # exception 3, end of range, c = 9: second check ignored
    (10, "827101", "28748352", True),  # exception 3, c not 6 or 9: both checks pass
    (11, "134020", "63849203", True),  # exception 4: remainder equals the check digit
    (12, "118765", "64371389", True),  # exception 1: 27 added, passes double alternate
    (13, "200915", "41011166", True),  # exception 6: fails, but a foreign currency account
    (14, "938611", "07806039", True),  # exception 5: passes
    (15, "938600", "42368003", True),  # exception 5: passes with substitution
    (16, "938063", "55065200", True),  # exception 5: both checks remainder 0 and pass
    (17, "772798", "99345694", True),  # exception 7: passes but would fail the standard check
    (18, "086090", "06774744", True),  # exception 8: passes
    (19, "309070", "02355688", True),  # exceptions 2 & 9: first check passes
    (20, "309070", "12345668", True),  # exceptions 2 & 9: first fails, second passes with substitution
    (21, "309070", "12345677", True),  # exceptions 2 & 9: a <> 0 and g <> 9, passes
    (22, "309070", "99345694", True),  # exceptions 2 & 9: a <> 0 and g = 9, passes
    (23, "938063", "15764273", False),  # exception 5: first check digit correct, second incorrect
    (24, "938063", "15764264", False),  # exception 5: first check digit incorrect, second correct
    (25, "938063", "15763217", False),  # exception 5: first check digit incorrect, remainder 1
    (26, "118765", "64371388", False),  # exception 1: fails double alternate
    (27, "203099", "66831036", False),  # passes modulus 11, fails double alternate
    (28, "203099", "58716970", False),  # fails modulus 11, passes double alternate
    (29, "089999", "66374959", False),  # fails modulus 10
    (30, "107999", "88837493", False),  # fails modulus 11
    (31, "074456", "12345112", True),  # exceptions 12/13: passes modulus 11 (modulus 10 would fail)
    (32, "070116", "34012583", True),  # exceptions 12/13: passes modulus 11 (and modulus 10)
    (33, "074456", "11104102", True),  # exceptions 12/13: fails modulus 11, passes modulus 10
    (34, "180002", "00000190", True),  # exception 14: first check fails, second passes
]


@pytest.mark.parametrize(("number", "sort_code", "account_number", "valid"), SPEC_TEST_CASES)
def test_every_published_test_case_gets_its_published_answer(number, sort_code, account_number, valid):
    assert check(sort_code, account_number, TABLES).accepted is valid


def test_the_published_cases_that_are_checked_are_valid_and_the_foreign_currency_one_is_not_checked():
    assert check("200915", "41011166", TABLES) is Outcome.FOREIGN_CURRENCY
    assert check("089999", "66374958", TABLES) is Outcome.VALID
    assert check("089999", "66374959", TABLES) is Outcome.INVALID


def test_the_worked_examples_of_exception_14():
    # Spec 2.2.2, exception 14, examples 1 (passes the first check) and 2 (passes the second).
    assert check("180002", "98093517", TABLES) is Outcome.VALID
    assert check("180002", "00000190", TABLES) is Outcome.VALID


def test_the_shipped_table_is_the_recorded_version():
    manifest = modulus.installed_manifest(validation.DEFAULT_MODULUS_DATA_DIR)
    assert (TABLES.version, len(TABLES.rows), len(TABLES.substitutions)) == ("8.50", manifest["rows"], 21)
    assert TABLES.substitutions["938173"] == "938017"  # the first row of the spec's table (exception 5)


def _weighted_sum(sort_code: str, account_number: str, weights: list[int]) -> int:
    return sum(int(d) * w for d, w in zip(sort_code + account_number, weights, strict=True))


def _double_alternate_sum(sort_code: str, account_number: str, weights: list[int]) -> int:
    products = [int(d) * w for d, w in zip(sort_code + account_number, weights, strict=True)]
    return sum(int(c) for product in products for c in str(product))


@given(account_number=digits)
def test_standard_modulus_10_is_the_weighted_sum_divisible_by_10(account_number):
    # Spec 1.3.2 and the table's row for 089000-089999: MOD10, weights 0 0 0 0 0 0 7 1 3 7 1 3 7 1.
    weights = [0, 0, 0, 0, 0, 0, 7, 1, 3, 7, 1, 3, 7, 1]
    expected = _weighted_sum("089999", account_number, weights) % 10 == 0
    assert check("089999", account_number, TABLES).accepted is expected


@given(account_number=digits)
def test_standard_modulus_11_is_the_weighted_sum_divisible_by_11(account_number):
    # Spec 1.3.2 and the table's row for 102400-107999: MOD11, weights 0 0 0 0 0 0 8 7 6 5 4 3 2 1.
    weights = [0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]
    expected = _weighted_sum("107999", account_number, weights) % 11 == 0
    assert check("107999", account_number, TABLES).accepted is expected


@given(account_number=digits)
def test_two_rows_without_exception_need_both_checks(account_number):
    # Spec 2.2.1 step 4 and the overview (1.2): 230124 has a MOD11 row and a DBLAL row, no exception.
    mod11 = [0, 0, 0, 0, 0, 0, 0, 7, 6, 5, 4, 3, 2, 1]
    double_alternate = [2, 1] * 7
    expected = (
        _weighted_sum("230124", account_number, mod11) % 11 == 0
        and _double_alternate_sum("230124", account_number, double_alternate) % 10 == 0
    )
    assert check("230124", account_number, TABLES).accepted is expected


@given(
    first_seven=st.text("0123456789", min_size=7, max_size=7),
    position=st.integers(0, 7),
    change=st.integers(1, 9),
)
def test_modulus_11_catches_every_single_digit_mistake(first_seven, position, change):
    # The reason for the check (spec 1.1.2): a mistyped digit at a weighted position fails (11 is prime
    # and no weight of 107999's row is a multiple of it). The last digit has weight 1, so it completes
    # a valid number unless 10 would be needed.
    weights = [0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]
    last = -_weighted_sum("107999", first_seven + "0", weights) % 11
    assume(last < 10)
    account_number = f"{first_seven}{last}"
    assert check("107999", account_number, TABLES) is Outcome.VALID
    wrong = list(account_number)
    wrong[position] = str((int(wrong[position]) + change) % 10)
    assert check("107999", "".join(wrong), TABLES) is Outcome.INVALID


@given(sort_code=st.integers(0, 10003).map(lambda n: f"{n:06d}"), account_number=digits)
def test_a_sort_code_outside_every_range_cannot_be_checked_and_is_accepted(sort_code, account_number):
    # Spec 2.2.1 step 1: no range, no check; presumed valid. The table's first range starts at 010004.
    assert check(sort_code, account_number, TABLES) is Outcome.NOT_IN_TABLE
    assert Outcome.NOT_IN_TABLE.accepted


@given(a=st.integers(4, 8), middle=st.text("0123456789", min_size=5, max_size=5), gh=st.integers(0, 9))
def test_exception_6_foreign_currency_accounts_are_not_checked(a, middle, gh):
    # a = 4 to 8 and g = h: a foreign currency account, which the checks cannot be used for.
    assert check("200915", f"{a}{middle}{gh}{gh}", TABLES) is Outcome.FOREIGN_CURRENCY


@given(
    ab=st.text("0123456789", min_size=2, max_size=2),
    c=st.sampled_from("69"),
    rest=st.text("0123456789", min_size=5, max_size=5),
)
def test_exception_3_skips_the_double_alternate_check_when_c_is_6_or_9(ab, c, rest):
    mod11 = [0, 0, 0, 0, 0, 0, 0, 0, 7, 3, 4, 9, 2, 1]  # 820000-826097's first row
    account_number = ab + c + rest
    expected = _weighted_sum("820000", account_number, mod11) % 11 == 0
    assert check("820000", account_number, TABLES).accepted is expected


@given(first_seven=st.text("0123456789", min_size=7, max_size=7), h=st.sampled_from("2345678"))
def test_exception_14_only_drops_an_eighth_digit_of_0_1_or_9(first_seven, h):
    weights = [0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]
    account_number = first_seven + h
    expected = _weighted_sum("180002", account_number, weights) % 11 == 0
    assert check("180002", account_number, TABLES).accepted is expected


@given(first_seven=st.text("0123456789", min_size=7, max_size=7), h=st.sampled_from("019"))
def test_exception_14_accepts_the_number_without_its_eighth_digit(first_seven, h):
    weights = [0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]
    account_number = first_seven + h
    expected = (
        _weighted_sum("180002", account_number, weights) % 11 == 0
        or _weighted_sum("180002", "0" + first_seven, weights) % 11 == 0
    )
    assert check("180002", account_number, TABLES).accepted is expected


@given(sort_code=st.integers(0, 999999).map(lambda n: f"{n:06d}"))
def test_the_rows_for_a_sort_code_are_those_whose_range_holds_it_in_table_order(sort_code):
    # Spec 2.3: ranges are inclusive; a sort code's first row is checked first.
    assert TABLES.rows_for(sort_code) == [row for row in TABLES.rows if row.start <= sort_code <= row.end]


@pytest.mark.parametrize(("sort_code", "account_number"), [("12345", "12345678"), ("123456", "1234567x")])
def test_check_takes_only_normalised_digits(sort_code, account_number):
    with pytest.raises(ValueError, match="6-digit sort code and an 8-digit account number"):
        check(sort_code, account_number, TABLES)


GOOD = "089000 089999 MOD10    0    0    0    0    0    0    7    1    3    7    1    3    7    1"


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("089000 089999 MOD10    0    0    0", "expected 17 or 18 fields"),
        ("08900x 089999 MOD10" + "    1" * 14, "the start sort code '08900x' is not 6 digits"),
        ("089999 089000 MOD10" + "    1" * 14, "the range 089999-089000 ends before it starts"),
        ("090000 090001 MOD12" + "    1" * 14, "the algorithm 'MOD12' is not MOD10, MOD11 or DBLAL"),
        ("090000 090001 MOD11" + "    1" * 13 + "    x", "the weight 'x' is not a whole number"),
        ("090000 090001 DBLAL" + "    1" * 13 + "   -1", "a double alternate check cannot have a negative"),
        ("090000 090001 MOD11" + "    1" * 14 + "  15", "the exception '15' is not one of 1 to 14"),
        ("088000 088001 MOD11" + "    1" * 14, "out of order or overlaps 089000-089999"),
        ("089500 090001 MOD11" + "    1" * 14, "out of order or overlaps 089000-089999"),
        ("090000 090001 MOD11" + "    1" * 14 + "   2", "exception 2 must be followed by a row"),
        ("090000 090001 MOD11" + "    1" * 14 + "  13", "exception 13 must follow a row with exception 12"),
    ],
)
def test_a_bad_weight_table_is_refused_naming_its_line(bad_line, message):
    with pytest.raises(TableError) as raised:
        modulus.parse_weight_table(f"{GOOD}\r\n\r\n{bad_line}\r\n")
    assert raised.value.line == 3
    assert message in str(raised.value)
    assert str(raised.value).startswith("line 3: ")


def test_a_third_row_for_one_range_is_refused():
    with pytest.raises(TableError, match="line 3: a third row for the range 089000-089999"):
        modulus.parse_weight_table("\n".join([GOOD, GOOD, GOOD]))


def test_an_empty_weight_table_is_refused():
    with pytest.raises(TableError, match="The weight table has no rows"):
        modulus.parse_weight_table("\r\n")


def test_the_shipped_weight_table_reads_as_published():
    text = (validation.DEFAULT_MODULUS_DATA_DIR / "valacdos-v8-50.txt").read_text(encoding="ascii")
    rows = modulus.parse_weight_table(text)
    assert rows[0] == modulus.WeightRow(
        "010004", "016715", modulus.Method.MOD11, (0, 0, 0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1)
    )
    assert rows[-1].exception is None and rows[-1].method is modulus.Method.DBLAL
    assert [row.exception for row in rows if row.start == "938000"] == [5, 5]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("938173 938017\n938289", "line 2: expected two 6-digit sort codes"),
        ("938173 938017\n938173 938018", "line 2: the sort code 938173 is substituted twice"),
    ],
)
def test_a_bad_substitution_table_is_refused_naming_its_line(text, message):
    with pytest.raises(TableError, match=message):
        modulus.parse_substitution_table(text)


def test_install_refuses_a_file_whose_digest_changed(tmp_path: Path):
    for name in ("valacdos-v8-50.txt", "scsubtab-v8-50.txt", modulus.MANIFEST_NAME):
        (tmp_path / name).write_bytes((validation.DEFAULT_MODULUS_DATA_DIR / name).read_bytes())
    (tmp_path / "scsubtab-v8-50.txt").write_text("938173 938018\r\n")
    with pytest.raises(TableError, match=re.escape("scsubtab-v8-50.txt does not match the digest recorded")):
        modulus.load_installed(tmp_path)


def test_install_writes_the_versioned_files_then_the_manifest(tmp_path: Path):
    weights = (validation.DEFAULT_MODULUS_DATA_DIR / "valacdos-v8-50.txt").read_bytes()
    substitutions = b"938173 938017\r\n"
    tables = modulus.install(
        tmp_path, version="8.51", weights=weights, substitutions=substitutions, installed_at="then"
    )
    assert (tables.version, len(tables.rows), dict(tables.substitutions)) == (
        "8.51",
        1151,
        {"938173": "938017"},
    )
    manifest = modulus.installed_manifest(tmp_path)
    assert manifest["weights"] == {"file": "valacdos-v8-51.txt", "sha256": modulus.sha256_of(weights)}
    assert manifest["substitutions"] == {
        "file": "scsubtab-v8-51.txt",
        "sha256": modulus.sha256_of(substitutions),
    }
    assert (tmp_path / "valacdos-v8-51.txt").read_bytes() == weights
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "modulus.json",
        "scsubtab-v8-51.txt",
        "valacdos-v8-51.txt",
    ]  # no temporary file left behind


@pytest.mark.parametrize(
    ("version", "weights", "substitutions", "message"),
    [
        ("8.5", GOOD.encode(), b"", "The version '8.5' is not of the form 8.50."),
        (
            "8.51",
            GOOD.encode() + b"\r\n\xa3",
            b"",
            "line 2: the weight table has a character that is not ASCII.",
        ),
        (
            "8.51",
            GOOD.encode(),
            None,
            "No substitution table is installed yet: give one with the weight table.",
        ),
    ],
)
def test_install_refuses_and_writes_nothing(tmp_path: Path, version, weights, substitutions, message):
    with pytest.raises(TableError) as raised:
        modulus.install(
            tmp_path, version=version, weights=weights, substitutions=substitutions, installed_at="then"
        )
    assert str(raised.value) == message
    assert not (tmp_path / modulus.MANIFEST_NAME).exists()

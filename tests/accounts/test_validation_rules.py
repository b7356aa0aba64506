"""The validation and normalisation rules of accounts.validation, without the database: what each accepts,
the one form it stores, and the exact message and code a person sees when a value is refused (forms, the
admin and the services all show these). The normal forms are stated here independently of the code:
E.164 for phone numbers (ITU-T E.164, as Ofcom's numbering plan writes UK numbers), the postcode formats
of the government data standard, and digits only for bank details."""

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from accounts.validation import (
    name_words,
    national_phone_digits,
    normalise_account_number,
    normalise_email,
    normalise_phone,
    normalise_postcode,
    normalise_sort_code,
)


def refusal(check, value) -> ValidationError:
    with pytest.raises(ValidationError) as raised:
        check(value)
    return raised.value


@pytest.mark.parametrize(
    ("check", "value", "message", "code"),
    [
        (normalise_phone, "not a number", "Enter a valid phone number.", "invalid_phone"),
        (normalise_phone, "0123", "Enter a valid phone number.", "invalid_phone"),
        (normalise_phone, "07700 900123", "Enter a valid phone number.", "invalid_phone"),
        (
            normalise_postcode,
            "SW1A 1A",
            "Enter a valid UK postcode.",
            "invalid_postcode",
        ),
        (
            normalise_sort_code,
            "12-34-5",
            "Enter a sort code of 6 digits.",
            "invalid_sort_code",
        ),
        (
            normalise_account_number,
            "1234567",
            "Enter an account number of 8 digits.",
            "invalid_account_number",
        ),
        # Digits of other scripts are digits to Python's \d, but not to a Bacs file or the modulus check.
        (
            normalise_sort_code,
            "\u0661\u0662\u0663\u0664\u0665\u0666",
            "Enter a sort code of 6 digits.",
            "invalid_sort_code",
        ),
        (
            normalise_account_number,
            "\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18",
            "Enter an account number of 8 digits.",
            "invalid_account_number",
        ),
    ],
)
def test_a_refused_value_gets_its_own_message_and_code(check, value, message, code):
    error = refusal(check, value)
    assert error.messages == [message]
    assert error.code == code


def test_a_refused_email_address_names_the_problem():
    assert refusal(normalise_email, "ann@").messages == ["Enter a valid email address."]


# UK numbers by their national significant number: Ofcom's geographic drama ranges (020 7946 0xxx London,
# 0113 496 0xxx Leeds) and an allocated mobile range (07911 12xxxx; the 07700 900 drama range is not
# allocated, so the numbering plan, and we, refuse it).
uk_numbers = st.one_of(
    st.integers(0, 999).map(lambda n: f"207946{n:04d}"),
    st.integers(0, 999).map(lambda n: f"1134960{n:03d}"),
    st.integers(0, 9999).map(lambda n: f"791112{n:04d}"),
)


def written_forms(national_significant: str) -> list[str]:
    """How people write one UK number: with the trunk 0, with +44 or 0044, spaced, bracketed, hyphenated."""
    area, rest = national_significant[:3], national_significant[3:]
    return [
        f"0{national_significant}",
        f"+44{national_significant}",
        f"+44 {area} {rest}",
        f"0044 {area} {rest}",
        f"(0{area}) {rest[:3]}-{rest[3:]}",
        f"+44 (0){area} {rest}",
        f"  0{area} {rest}  ",
    ]


@given(uk_numbers)
def test_every_written_form_of_a_uk_number_is_stored_as_its_e164_form(national_significant):
    e164 = f"+44{national_significant}"
    for written in written_forms(national_significant):
        assert normalise_phone(written) == e164
    assert national_phone_digits(e164) == f"0{national_significant}"


def test_a_number_abroad_keeps_its_country_code_and_is_shown_as_stored():
    assert normalise_phone("+33 1 42 68 53 00") == "+33142685300"
    assert national_phone_digits("+33142685300") == "+33142685300"


def test_email_addresses_are_trimmed_and_compared_without_case():
    assert normalise_email("  Ann.Smith@Example.CO.UK ") == "ann.smith@example.co.uk"


# The outward code's formats (A9, A99, AA9, AA99, A9A, AA9A) and the inward code 9AA, with the letters the
# standard allows in each position.
FIRST = "ABCDEFGHIJKLMNOPRSTUWYZ"  # not Q, V, X
SECOND = "ABCDEFGHKLMNOPQRSTUVWXY"  # not I, J, Z
THIRD = "ABCDEFGHJKPSTUW"  # A9A
FOURTH = "ABEHMNPRVWXY"  # AA9A
INWARD = "ABDEFGHJLNPQRSTUWXYZ"  # not C, I, K, M, O, V
digit = st.sampled_from("0123456789")
outward = st.one_of(
    st.tuples(st.sampled_from(FIRST), digit),
    st.tuples(st.sampled_from(FIRST), digit, digit),
    st.tuples(st.sampled_from(FIRST), st.sampled_from(SECOND), digit),
    st.tuples(st.sampled_from(FIRST), st.sampled_from(SECOND), digit, digit),
    st.tuples(st.sampled_from(FIRST), digit, st.sampled_from(THIRD)),
    st.tuples(st.sampled_from(FIRST), st.sampled_from(SECOND), digit, st.sampled_from(FOURTH)),
).map("".join)
inward = st.tuples(digit, st.sampled_from(INWARD), st.sampled_from(INWARD)).map("".join)


@given(outward, inward, st.sampled_from(["", " ", "  ", "\t"]))
def test_a_postcode_is_stored_upper_case_with_one_space_before_the_inward_code(out, inn, gap):
    assert normalise_postcode(f"{out.lower()}{gap}{inn.lower()}") == f"{out} {inn}"


@pytest.mark.parametrize("postcode", ["QA1 1AA", "SW1A 1AC", "SW1A", "SW1A 1AA X", "GIR 0AB"])
def test_what_is_not_a_postcode_is_refused(postcode):
    assert refusal(normalise_postcode, postcode).code == "invalid_postcode"


def test_the_one_non_geographic_postcode_is_accepted():
    assert normalise_postcode("gir0aa") == "GIR 0AA"


@given(st.text("0123456789", min_size=6, max_size=6), st.sampled_from(["", "-", " "]))
def test_a_sort_code_is_stored_as_its_six_digits(digits, separator):
    written = separator.join([digits[:2], digits[2:4], digits[4:]])
    assert normalise_sort_code(written) == digits


@given(st.text("0123456789", min_size=8, max_size=8), st.sampled_from(["", " ", "  "]))
def test_an_account_number_is_stored_as_its_eight_digits(digits, separator):
    written = separator.join([digits[:4], digits[4:]])
    assert normalise_account_number(written) == digits


@pytest.mark.parametrize("value", ["1234-5678", "1234567a", "123456789"])
def test_an_account_number_is_digits_and_spaces_only(value):
    assert refusal(normalise_account_number, value).code == "invalid_account_number"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("Zoë O'Brien-Smith", ["obrien", "smith", "zoe"]),
        ("Ærø Łukasz", ["aero", "lukasz"]),
        ("SMITH & smith Ltd.", ["ltd", "smith"]),
        ("A.B.C. Telecom", ["abc", "telecom"]),
        ("", []),
        ("--", []),
    ],
)
def test_a_name_is_searched_by_its_distinct_words_without_accents_or_case(name, words):
    assert name_words(name) == words

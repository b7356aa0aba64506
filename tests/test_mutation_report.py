"""The mutation-testing gate (`make mutation`, tools/mutation_report.py) and its configuration: a gate
that could not fail, or a rule module left out of it, would make the score meaningless."""

import re
import tomllib
from pathlib import Path

from tools.mutation_report import KILL_TARGET, judge, read_equivalents

REPO = Path(__file__).resolve().parent.parent
RULE_MODULES = {
    "fusion_site/money.py",
    "fusion_site/working_days.py",
    "privacy/deadlines.py",
    "accounts/validation.py",
    "billing/importer/parse.py",
    "billing/rating.py",
    "billing/bacs.py",
    "billing/bacs_reports.py",
}


def test_the_gate_passes_at_the_target_with_every_survivor_explained():
    results = {"m.py": {f"m.x_f__mutmut_{n}": 1 for n in range(9)} | {"m.x_f__mutmut_9": 0}}
    verdict = judge(results, {"m.x_f__mutmut_9": "returns the same value either way"})
    assert verdict.ratio == KILL_TARGET and verdict.passed


def test_the_gate_fails_on_an_unexplained_survivor_or_a_blank_reason():
    results = {"m.py": {f"m.x_f__mutmut_{n}": 1 for n in range(19)} | {"m.x_f__mutmut_19": 0}}
    assert not judge(results, {}).passed
    assert judge(results, {}).unexplained == [("m.x_f__mutmut_19", "survived")]
    assert not judge(results, {"m.x_f__mutmut_19": "  "}).passed


def test_the_gate_fails_below_the_target_even_when_every_survivor_is_listed():
    results = {"m.py": {"m.x_f__mutmut_1": 1, "m.x_f__mutmut_2": 0, "m.x_f__mutmut_3": 33}}
    verdict = judge(results, {"m.x_f__mutmut_2": "why", "m.x_f__mutmut_3": "why"})
    assert not verdict.passed
    assert judge({}, {}).passed is False  # nothing run is not a pass


def test_a_mutant_listed_as_equivalent_that_the_tests_kill_is_reported_as_stale():
    verdict = judge({"m.py": {"m.x_f__mutmut_1": 1}}, {"m.x_f__mutmut_1": "thought equivalent"})
    assert verdict.stale == ["m.x_f__mutmut_1"]


def test_every_rule_module_is_mutated_with_tests_that_exist_and_every_listed_equivalent_says_why():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mutmut"]
    assert set(config["only_mutate"]) == RULE_MODULES
    for path in config["pytest_add_cli_args_test_selection"]:
        assert (REPO / path).is_file(), path
    for mutant, reason in read_equivalents().items():
        module = re.split(r"\.x[_\u01c1]", mutant)[0].replace(".", "/") + ".py"  # x_f or xǁClassǁmethod
        assert module in RULE_MODULES and reason.strip(), mutant
    makefile = (REPO / "Makefile").read_text()
    assert "mutmut run" in makefile and "tools/mutation_report.py" in makefile

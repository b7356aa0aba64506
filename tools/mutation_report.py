"""The verdict of `make mutation`: per rule module, how many mutants the tests killed, and whether every
one they did not kill is listed in tools/mutation.toml with why it is equivalent (changes nothing a caller
can observe). Fails (exit 1) below KILL_TARGET or on any unexplained survivor, so a weakened test shows.

Reads mutmut's own result files (mutants/<module>.py.meta, JSON: mutant name -> exit code) after
`mutmut run`; the exit codes are mutmut's: 1 killed, 0 survived, 33 no tests, -24/24/152 timeout, ...
"""

import json
import sys
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS_FILE = ROOT / "tools" / "mutation.toml"
KILL_TARGET = 0.90
# A timeout is a mutant the tests detected (it made them loop), so it counts with the killed ones.
DETECTED = {"killed", "timeout"}
STATUS_BY_EXIT_CODE = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped"}
STATUS_BY_EXIT_CODE |= {
    -24: "timeout",
    24: "timeout",
    152: "timeout",
    36: "timeout",
    37: "caught by type check",
}


@dataclass
class Verdict:
    counts: dict[str, Counter[str]] = field(default_factory=dict)
    unexplained: list[tuple[str, str]] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(sum(counter.values()) for counter in self.counts.values())

    @property
    def detected(self) -> int:
        return sum(counter[status] for counter in self.counts.values() for status in DETECTED)

    @property
    def ratio(self) -> float:
        return self.detected / self.total if self.total else 0.0

    @property
    def passed(self) -> bool:
        return self.total > 0 and self.ratio >= KILL_TARGET and not self.unexplained


def status_of(exit_code: int | None) -> str:
    if exit_code is None:
        return "not run"
    return STATUS_BY_EXIT_CODE.get(exit_code, f"exit code {exit_code}")


def judge(results: dict[str, dict[str, int | None]], equivalents: dict[str, str]) -> Verdict:
    """``results``: module -> mutant name -> exit code; ``equivalents``: mutant name -> why it survives."""
    verdict = Verdict()
    for module, exit_codes in sorted(results.items()):
        counter: Counter[str] = Counter()
        for mutant, exit_code in sorted(exit_codes.items()):
            status = status_of(exit_code)
            counter[status] += 1
            if status in DETECTED:
                if mutant in equivalents:
                    verdict.stale.append(mutant)
            elif not equivalents.get(mutant, "").strip():
                verdict.unexplained.append((mutant, status))
        verdict.counts[module] = counter
    return verdict


def read_results(mutants_dir: Path) -> dict[str, dict[str, int | None]]:
    results = {}
    for meta in sorted(mutants_dir.rglob("*.py.meta")):
        module = meta.relative_to(mutants_dir).as_posix().removesuffix(".meta")
        results[module] = json.loads(meta.read_text())["exit_code_by_key"]
    return results


def read_equivalents(path: Path = EQUIVALENTS_FILE) -> dict[str, str]:
    with path.open("rb") as file:
        return dict(tomllib.load(file).get("equivalent", {}))


def main() -> int:
    verdict = judge(read_results(ROOT / "mutants"), read_equivalents())
    print(f"{'module':32} {'mutants':>8} {'killed':>7} {'timeout':>8} {'survived':>9} {'no tests':>9}")
    for module, counter in verdict.counts.items():
        print(
            f"{module:32} {sum(counter.values()):8} {counter['killed']:7} {counter['timeout']:8} "
            f"{counter['survived']:9} {counter['no tests']:9}"
        )
    score = f"{verdict.ratio:.1%} (target {KILL_TARGET:.0%})"
    print(f"detected {verdict.detected} of {verdict.total} mutants: {score}")
    for mutant, status in verdict.unexplained:
        print(f"UNEXPLAINED {status}: {mutant} (see `.venv/bin/mutmut show {mutant}`)")
    for mutant in verdict.stale:
        print(f"note: {mutant} is listed as equivalent in {EQUIVALENTS_FILE.name} but the tests now kill it")
    print("PASS" if verdict.passed else "FAIL")
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())

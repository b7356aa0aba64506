"""The README is the newcomer's map: its "Where things live" table names every module, no row twice,
and nothing outside the repository."""

import fnmatch
import re

from django.conf import settings

README = (settings.BASE_DIR / "README.md").read_text()
APPS = ("fusion_site", "accounts", "billing", "privacy")


def _map_section() -> str:
    start = README.index("## Where things live")
    return README[start : README.index("\n## ", start + 1)]


def _named_paths() -> list[str]:
    return re.findall(r"`([\w*./-]+)`", _map_section())


def _covered(module: str, names: list[str]) -> bool:
    return any(
        module == name
        or (name.endswith("/") and module.startswith(name))
        or ("*" in name and fnmatch.fnmatch(module, name))
        for name in names
    )


def test_every_module_is_on_the_map():
    names = _named_paths()
    modules = sorted(
        str(path.relative_to(settings.BASE_DIR))
        for app in APPS
        for path in (settings.BASE_DIR / app).rglob("*.py")
        if path.name != "__init__.py" and "migrations" not in path.parts
    )
    assert modules
    assert [module for module in modules if not _covered(module, names)] == []


def test_every_path_on_the_map_exists():
    missing = [
        name
        for name in _named_paths()
        if "/" in name and "*" not in name and not (settings.BASE_DIR / name.rstrip("/")).exists()
    ]
    assert missing == []


def test_no_table_row_is_repeated_and_nothing_points_outside_the_repository():
    rows = [line.split("|")[1].strip() for line in README.splitlines() if line.startswith("| ")]
    repeated = {row for row in rows if rows.count(row) > 1 and row.strip("- ")}
    assert repeated == set()
    assert "../shared" not in README

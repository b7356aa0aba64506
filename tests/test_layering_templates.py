"""Templates and URL names keep the layering too: fusion_site <- accounts <- billing <- privacy.

import-linter (``make lint``) checks the imports, but an accounts template holding
``{% url 'privacy:...' %}``, ``perms.privacy...`` or ``{% include "privacy/..." %}``, or accounts code
calling ``reverse("privacy:...")``, is the same upward dependency without an import. These tests read
every template file and every module of the apps, find which app each URL namespace belongs to from
the URL resolver, and fail on any name of a higher app. A lower app that needs a higher app's link on
its page gets it through a hook the higher app registers into (accounts.site_details_links).
"""

import re
from pathlib import Path

from django.conf import settings
from django.urls import get_resolver

LAYERS = ["fusion_site", "accounts", "billing", "privacy"]  # lowest first
ROOT = Path(settings.BASE_DIR)

# Who owns each top-level entry of the project's templates directory. base.html is the site shell of the
# composition root (fusion_site.urls mounts every app, settings installs them all), so, like those
# modules, it may link to every app. A new directory must be given an owner here.
TEMPLATE_OWNERS = {
    "accounts": "accounts",
    "registration": "accounts",  # login and the second factor (accounts.two_factor, accounts.views)
    "billing": "billing",
    "privacy": "privacy",
    "website": "privacy",  # the public website (privacy.website)
    # The layout of every document (invoices, statements, the Art. 15 report) that fusion_site.pdf prints:
    # the lowest layer's, so it may name no app's URL or permission.
    "document.html": "fusion_site",
}
# The error pages (fusion_site.error_views, wired by fusion_site.urls) are site-wide too: a way back to the
# staff home or, for a visitor, the public website; so are the page links every list includes and the chart
# every chart page includes (built by fusion_site.charts).
COMPOSITION_ROOT = {
    "base.html",
    "403.html",
    "404.html",
    "500.html",
    "_error_way_back.html",
    "_pages.html",
    "_chart.html",
}
# They name every app: the settings, the URL map, and the menu of every page (fusion_site/navigation.py,
# which was the project template base.html's and, like it, belongs to no app).
COMPOSITION_ROOT_MODULES = {"fusion_site/settings.py", "fusion_site/urls.py", "fusion_site/navigation.py"}

URL_TAG = re.compile(r"""\{%\s*url\s+["']([\w-]+):""")
PERMS = re.compile(r"\bperms\.(\w+)\.")
INCLUDES = re.compile(r"""\{%\s*(?:include|extends)\s+["']([\w-]+)/""")


def _layer(app: str) -> int:
    return LAYERS.index(app)


def _namespace_owners() -> dict[str, str]:
    """Every URL namespace and the app whose URL conf it is (``website`` is privacy's)."""
    owners = {}
    for namespace, (_prefix, resolver) in get_resolver().namespace_dict.items():
        # An included URL conf is its module; the admin's is a list of patterns (Django's, not ours).
        top = getattr(resolver.urlconf_module, "__name__", "").split(".")[0]
        if top in LAYERS:
            owners[namespace] = top
    return owners


def _template_files() -> list[tuple[Path, str | None]]:
    """Every template with its owning app (None for the composition root's)."""
    files: list[tuple[Path, str | None]] = []
    for directory in (Path(d) for engine in settings.TEMPLATES for d in engine["DIRS"]):
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            top = path.relative_to(directory).parts[0]
            if top in COMPOSITION_ROOT:
                files.append((path, None))
                continue
            assert top in TEMPLATE_OWNERS, (
                f"{path}: which app owns templates/{top}? Add it to TEMPLATE_OWNERS"
            )
            files.append((path, TEMPLATE_OWNERS[top]))
    for app in LAYERS:  # templates inside an app (APP_DIRS) belong to it
        files.extend((path, app) for path in sorted((ROOT / app / "templates").rglob("*")) if path.is_file())
    return files


def _upward_names_in_template(text: str, owner: str, owners: dict[str, str]) -> list[str]:
    found = [
        f"{{% url '{ns}:" for ns in URL_TAG.findall(text) if _layer(owners.get(ns, owner)) > _layer(owner)
    ]
    found += [f"perms.{app}." for app in PERMS.findall(text) if app in LAYERS and _layer(app) > _layer(owner)]
    found += [
        f"{{% include '{top}/"
        for top in INCLUDES.findall(text)
        if top in TEMPLATE_OWNERS and _layer(TEMPLATE_OWNERS[top]) > _layer(owner)
    ]
    return found


def test_the_namespaces_are_known_so_the_check_can_see_them():
    owners = _namespace_owners()
    assert {"accounts": "accounts", "billing": "billing", "privacy": "privacy"}.items() <= owners.items()
    assert owners["website"] == owners["website_staff"] == "privacy"


def test_no_template_of_a_lower_app_names_a_url_or_permission_of_a_higher_app():
    owners = _namespace_owners()
    files = _template_files()
    assert len(files) > 40  # every template is read, not a sample

    upward = {
        str(path.relative_to(ROOT)): names
        for path, owner in files
        if owner is not None
        and (names := _upward_names_in_template(path.read_text(encoding="utf-8"), owner, owners))
    }

    assert upward == {}, "use a hook the higher app registers into (see accounts.site_details_links)"


def test_no_module_of_a_lower_app_names_a_url_of_a_higher_app():
    owners = _namespace_owners()
    namespaces = "|".join(map(re.escape, owners))
    pattern = re.compile(rf"""["']({namespaces}):[\w-]+["']""")
    upward = {}
    for app in LAYERS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if str(path.relative_to(ROOT)) in COMPOSITION_ROOT_MODULES:
                continue
            names = [
                ns
                for ns in pattern.findall(path.read_text(encoding="utf-8"))
                if _layer(owners[ns]) > _layer(app)
            ]
            if names:
                upward[str(path.relative_to(ROOT))] = names

    assert upward == {}


def test_the_check_finds_an_upward_link_where_there_is_one():
    owners = _namespace_owners()
    accounts_page = (
        "{% if perms.privacy.view_dataexport %}"
        "<a href=\"{% url 'privacy:customer_exports' customer.reference %}\">Portability exports</a>"
        '{% endif %}<a href="{% url \'accounts:home\' %}">Home</a>{% include "billing/_totals.html" %}'
    )

    assert _upward_names_in_template(accounts_page, "accounts", owners) == [
        "{% url 'privacy:",
        "perms.privacy.",
        "{% include 'billing/",
    ]
    assert _upward_names_in_template(accounts_page, "privacy", owners) == []

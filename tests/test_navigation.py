"""The menu (fusion_site/navigation.py) shows each user the links the template's own tags showed."""

# ruff: noqa: E501 - TEMPLATES_OWN_MENU keeps the former template's lines as they were

import re

import pytest
from django.contrib.auth.context_processors import PermWrapper
from django.template import Context, Template
from guardian.shortcuts import assign_perm

from accounts.models import Role
from fusion_site.navigation import menu_for

pytestmark = pytest.mark.django_db

# The menu as templates/base.html wrote it with {% url %} tags and ``perms`` before it moved to Python.
TEMPLATES_OWN_MENU = Template(
    "{% if user.is_verified %}\n"
    "{% if user.is_staff %}<a href=\"{% url 'accounts:home' %}\">Customers</a>{% endif %}\n"
    "{% if user.is_staff and perms.accounts.add_customer and perms.billing.add_lineproduct %}<a href=\"{% url 'billing:onboard' %}\">New customer</a>{% endif %}{% if user.is_staff and perms.billing.view_product %} <a href=\"{% url 'billing:products' %}\">Products</a>{% endif %}\n"
    "{% if user.is_staff and perms.billing.view_billing_data %}<a href=\"{% url 'billing:bill_runs' %}\">Bill runs</a>{% if perms.billing.view_callimport %} <a href=\"{% url 'billing:call_imports' %}\">Call imports</a>{% endif %}{% if perms.billing.view_callrecord %} <a href=\"{% url 'billing:suspense' %}\">Suspense</a>{% endif %}{% endif %}\n"
    "{% if user.is_staff and perms.billing.view_invoice and perms.billing.view_ledgerentry %}<a href=\"{% url 'billing:aged_debt' %}\">Aged debt</a>{% endif %}{% if user.is_staff and user.partner_id and perms.billing.view_dunningstep %} <a href=\"{% url 'billing:dunning_steps' user.partner_id %}\">Dunning</a>{% endif %}{% if user.is_staff and perms.billing.view_bacsreportimport %} <a href=\"{% url 'billing:bacs_reports' %}\">Bacs reports</a>{% endif %}\n"
    "{% if user.is_staff and perms.privacy.view_privacyrequest %}<a href=\"{% url 'privacy:queue' %}\">Privacy requests</a>{% endif %}\n"
    "{% if user.is_staff and perms.privacy.view_data_map %}<a href=\"{% url 'privacy:data_map' %}\">Data map</a>{% endif %}\n"
    "{% if user.is_staff and perms.privacy.view_websitesubmission %}<a href=\"{% url 'website_staff:submissions' %}\">Website</a>{% endif %}{% if user.is_staff and perms.privacy.view_privacynotice %}<a href=\"{% url 'website_staff:notices' %}\">Privacy notices</a>{% endif %}\n"
    "{% if user.is_staff and perms.privacy.view_retentionrun %}<a href=\"{% url 'privacy:retention' %}\">Retention</a>{% endif %}\n"
    "{% if user.is_staff and perms.privacy.view_impactassessment %}<a href=\"{% url 'privacy:assessments' %}\">Impact assessments</a>{% endif %}{% if user.is_staff and perms.privacy.view_processor %}<a href=\"{% url 'privacy:processors' %}\">Processors</a>{% endif %}\n"
    "{% if user.is_staff and perms.privacy.view_breachincident %}<a href=\"{% url 'privacy:breaches' %}\">Breaches</a>{% endif %}\n"
    "{% if user.is_staff %}<a href=\"{% url 'admin:index' %}\">Admin</a>{% endif %}\n"
    "{% if user.customer_id %}<a href=\"{% url 'accounts:my_account' %}\">My account</a>{% if perms.billing.view_invoice %} <a href=\"{% url 'billing:customer_invoices' user.customer_reference %}\">My invoices</a>{% endif %}{% if perms.billing.view_ledgerentry %} <a href=\"{% url 'billing:account' user.customer_reference %}\">My statement</a>{% endif %} <a href=\"{% url 'privacy:my_requests' %}\">My privacy requests</a> <a href=\"{% url 'privacy:my_access_report' %}\">My data</a> <a href=\"{% url 'privacy:my_access_log' %}\">Who has seen my data</a>{% if perms.privacy.view_dataexport %} <a href=\"{% url 'privacy:my_data' %}\">Download my data</a>{% endif %}{% endif %}\n"
    "{% endif %}\n"
)
LINK = re.compile(r'<a href="([^"]*)">([^<]*)</a>')


def _template_links(user):
    shown = TEMPLATES_OWN_MENU.render(Context({"user": user, "perms": PermWrapper(user)}))
    return LINK.findall(shown)


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("verified", [True, False])
def test_each_role_sees_the_links_the_template_showed(make_user, role, verified):
    user = make_user(role)
    user.is_verified = lambda: verified  # as django_otp's middleware sets it

    links = [(link["url"], link["text"]) for link in menu_for(user)]

    assert links == _template_links(user)
    assert bool(links) == verified


def test_a_permission_granted_or_missing_adds_or_drops_exactly_its_links(make_user, partner):
    agent = make_user(Role.SUPPORT_AGENT)
    agent.is_verified = lambda: True
    before = {text for _url, text in _template_links(agent)}
    assign_perm("privacy.view_breachincident", agent)
    agent = type(agent).objects.get(pk=agent.pk)  # permissions are cached on the instance
    agent.is_verified = lambda: True

    links = [(link["url"], link["text"]) for link in menu_for(agent)]

    assert links == _template_links(agent)
    assert {text for _url, text in links} - before == {"Breaches"}


@pytest.mark.parametrize(("superuser", "active"), [(True, True), (True, False), (False, False)])
def test_a_superuser_or_an_inactive_user_sees_what_the_template_showed(make_user, superuser, active):
    user = make_user(Role.BILLING_AGENT)
    type(user).objects.filter(pk=user.pk).update(is_superuser=superuser, is_active=active)
    user = type(user).objects.get(pk=user.pk)
    user.is_verified = lambda: True

    links = [(link["url"], link["text"]) for link in menu_for(user)]

    assert links == _template_links(user)
    staff_links = {text for _url, text in links}
    assert ("Breaches" in staff_links) is (superuser and active)


def test_every_menu_link_opens_for_the_user_it_is_shown_to(client, make_user):
    """Through the pages: each role's menu on its home page, and every link in it answering 200."""
    for role in Role:
        user = make_user(role)
        client.force_login(user)
        user.is_verified = lambda: True
        expected = [(link["url"], link["text"]) for link in menu_for(user)]

        page = client.get("/", follow=True).content.decode()

        header = page[page.index('<header class="top">') : page.index("</header>")]
        assert LINK.findall(header) == expected
        for url, text in expected:
            assert client.get(url, follow=True).status_code == 200, (role, text)
        client.logout()

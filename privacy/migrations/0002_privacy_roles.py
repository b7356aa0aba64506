"""What each job role may do in privacy. Frozen here; changes are new migrations.

The DPO works the request queue and approves, reads the data map, previews and carries out erasures,
exports a customer's data, drafts and publishes privacy notices and exports the mailing list;
administrators may look at requests, the data map, erasure previews and records, notices and submissions;
job applications are visible only with view_recruitment (DPO and administrator); support agents open
requests for the customers they can see (and see those); a portal user submits requests for, and exports,
its own account. Partner staff get no export permission: an export is the whole of a customer's personal
and billing data, so it is granted one user at a time if at all.
"""

from django.db import migrations

from fusion_site.role_migrations import grant_role_permissions

ROLE_PERMISSIONS = {
    "data protection officer": [
        "privacy.view_privacyrequest",
        "privacy.add_privacyrequest",
        "privacy.change_privacyrequest",
        "privacy.approve_privacyrequest",
        "privacy.view_data_map",
        "privacy.preview_erasure",
        "privacy.erase_customer",
        "privacy.view_erasurerecord",
        "privacy.view_dataexport",
        "privacy.add_dataexport",
        "privacy.view_privacynotice",
        "privacy.add_privacynotice",
        "privacy.change_privacynotice",
        "privacy.publish_privacynotice",
        "privacy.view_websitesubmission",
        "privacy.view_recruitment",
        "privacy.export_mailing_list",
        "privacy.view_cookieconsentrecord",
    ],
    "administrator": [
        "privacy.view_privacyrequest",
        "privacy.view_data_map",
        "privacy.preview_erasure",
        "privacy.view_erasurerecord",
        "privacy.view_privacynotice",
        "privacy.view_websitesubmission",
        "privacy.view_recruitment",
        "privacy.view_cookieconsentrecord",
    ],
    "support agent": ["privacy.view_privacyrequest", "privacy.add_privacyrequest"],
    # A portal user exports its own account only (the object permission on its customer limits it).
    "customer": ["privacy.add_privacyrequest", "privacy.view_dataexport", "privacy.add_dataexport"],
}


class Migration(migrations.Migration):
    dependencies = [("privacy", "0001_initial"), ("accounts", "0002_role_groups")]

    operations = [grant_role_permissions(ROLE_PERMISSIONS)]

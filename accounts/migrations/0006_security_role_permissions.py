"""Administrators unlock locked-out logins (django-axes' access attempts), remove a lost authenticator
(its owner enrols a new one at the next login) and read the audit trail; the DPO reads the audit trail."""

from django.db import migrations

from fusion_site.role_migrations import grant_role_permissions

ADDED = {
    "administrator": [
        "accounts.view_auditevent",
        "axes.view_accessattempt",
        "axes.delete_accessattempt",
        "axes.view_accessfailurelog",
        "axes.view_accesslog",
        "otp_totp.view_totpdevice",
        "otp_totp.delete_totpdevice",
        "otp_static.view_staticdevice",
        "otp_static.delete_staticdevice",
    ],
    "data protection officer": ["accounts.view_auditevent"],
}


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_audit_trail"),
        ("axes", "0010_accessattemptexpiration"),
        ("otp_totp", "0003_add_timestamps"),
        ("otp_static", "0003_add_timestamps"),
    ]

    operations = [grant_role_permissions(ADDED)]

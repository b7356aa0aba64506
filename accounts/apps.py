from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and Site Details"

    def ready(self) -> None:
        from accounts import audit_keys
        from accounts import personal_data as accounts_personal_data
        from fusion_site import health, personal_data

        # /readyz is not ready while the audit trail cannot be signed.
        health.register_readiness_check("audit_keys", audit_keys.check_audit_keys)

        # Each app declares its own models' personal data; privacy reads the declarations of all.
        personal_data.register(*accounts_personal_data.DECLARATIONS)
        personal_data.register_subject(accounts_personal_data.SUBJECT)
        personal_data.register_checks(accounts_personal_data.CHECKS)
        from accounts import alerts, audit, signals

        del signals  # imported for its receivers (audit events of logins and permission changes)
        # Alerts listen to the audit trail; the audit trail imports no listener (pyproject.toml contract).
        audit.events_recorded.connect(alerts.after_events_recorded, dispatch_uid="accounts.alerts.exports")

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and Site Details"

    def ready(self) -> None:
        from accounts import alerts, audit, signals

        del signals  # imported for its receivers (audit events of logins and permission changes)
        # Alerts listen to the audit trail; the audit trail imports no listener (pyproject.toml contract).
        audit.events_recorded.connect(alerts.after_events_recorded, dispatch_uid="accounts.alerts.exports")

from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "privacy"

    def ready(self) -> None:
        from simple_history.signals import post_create_historical_record

        from privacy import site_details_links
        from privacy.rectification import record_rectification

        post_create_historical_record.connect(record_rectification, dispatch_uid="privacy.rectification")
        site_details_links.register()

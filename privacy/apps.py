from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "privacy"

    def ready(self) -> None:
        from fusion_site import personal_data
        from privacy import personal_data as privacy_personal_data

        # Each app declares its own models' personal data; privacy reads the declarations of all.
        personal_data.register(*privacy_personal_data.DECLARATIONS)
        personal_data.register_checks(privacy_personal_data.CHECKS)
        from privacy import retention

        retention.register_declared_handlers()
        from simple_history.signals import post_create_historical_record

        from privacy import site_details_links
        from privacy.rectification import record_rectification

        post_create_historical_record.connect(record_rectification, dispatch_uid="privacy.rectification")
        site_details_links.register()
        from privacy.breaches import register_alert_link

        register_alert_link()

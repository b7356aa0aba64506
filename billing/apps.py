from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from billing import personal_data as billing_personal_data
        from fusion_site import personal_data

        # Each app declares its own models' personal data; privacy reads the declarations of all.
        personal_data.register(*billing_personal_data.DECLARATIONS)
        personal_data.register_checks(billing_personal_data.CHECKS)
        from billing import site_details_links

        site_details_links.register()

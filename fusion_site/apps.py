from django.apps import AppConfig


class FusionSiteConfig(AppConfig):
    name = "fusion_site"
    verbose_name = "Fusion site infrastructure"

    def ready(self) -> None:
        from fusion_site import checks, log_redaction, lookups  # noqa: F401 - checks, lookups register themselves

        log_redaction.install_record_factory()

from django.apps import AppConfig


class FusionSiteConfig(AppConfig):
    name = "fusion_site"
    verbose_name = "Fusion site infrastructure"

    def ready(self) -> None:
        from fusion_site import checks, log_redaction  # noqa: F401 - checks registers itself

        log_redaction.install_record_factory()

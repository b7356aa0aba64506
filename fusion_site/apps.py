from django.apps import AppConfig


class FusionSiteConfig(AppConfig):
    name = "fusion_site"
    verbose_name = "Fusion site infrastructure"

    def ready(self) -> None:
        from fusion_site import log_redaction

        log_redaction.install_record_factory()

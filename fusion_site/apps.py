from django.apps import AppConfig


class FusionSiteConfig(AppConfig):
    name = "fusion_site"
    verbose_name = "Fusion site infrastructure"

"""A test-only URLconf: the site's own URLs and error handlers, plus a page that fails."""

from django.http import HttpRequest, HttpResponse
from django.urls import path

from fusion_site.urls import handler403, handler404, handler500
from fusion_site.urls import urlpatterns as site_urlpatterns

__all__ = ["handler403", "handler404", "handler500", "urlpatterns"]


def broken_page(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a page that fails")


urlpatterns = [path("test-only/broken/", broken_page), *site_urlpatterns]

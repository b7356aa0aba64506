"""Privacy pages, one module per concern: the request workflow, and the data map with erasure previews."""

from privacy.views.data_map import data_map_csv, data_map_view, erasure_preview_view
from privacy.views.requests import (
    access_report_view,
    my_access_report,
    my_requests,
    queue,
    register_download,
    request_action,
    request_detail,
    request_new,
    verify_identity,
)

__all__ = [
    "access_report_view",
    "data_map_csv",
    "data_map_view",
    "erasure_preview_view",
    "my_access_report",
    "my_requests",
    "queue",
    "register_download",
    "request_action",
    "request_detail",
    "request_new",
    "verify_identity",
]

"""Privacy pages, one module per concern: the request workflow, the data map with erasure previews, and
portability exports."""

from privacy.views.access_log import ask_about_access, my_access_log
from privacy.views.breaches import (
    breach_affected,
    breach_affected_csv,
    breach_decide,
    breach_detail,
    breach_edit,
    breach_new,
    breach_register,
    breach_report,
)
from privacy.views.data_map import data_map_csv, data_map_view, erasure_preview_view
from privacy.views.exports import customer_exports, export_download, my_data
from privacy.views.governance import (
    assessment_detail,
    assessment_edit,
    assessment_new,
    assessment_risk,
    assessment_sign_off,
    assessments,
    processor_detail,
    processor_edit,
    processor_new,
    processors,
)
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
from privacy.views.retention import (
    legal_hold_lift_view,
    legal_hold_set_view,
    retention_overview,
    retention_policy_edit,
)

__all__ = [
    "access_report_view",
    "ask_about_access",
    "assessment_detail",
    "assessment_edit",
    "assessment_new",
    "assessment_risk",
    "assessment_sign_off",
    "assessments",
    "breach_affected",
    "breach_affected_csv",
    "breach_decide",
    "breach_detail",
    "breach_edit",
    "breach_new",
    "breach_register",
    "breach_report",
    "customer_exports",
    "data_map_csv",
    "data_map_view",
    "erasure_preview_view",
    "export_download",
    "legal_hold_lift_view",
    "legal_hold_set_view",
    "my_access_log",
    "my_access_report",
    "my_data",
    "my_requests",
    "processor_detail",
    "processor_edit",
    "processor_new",
    "processors",
    "queue",
    "register_download",
    "request_action",
    "request_detail",
    "request_new",
    "retention_overview",
    "retention_policy_edit",
    "verify_identity",
]

"""The mailing list as CSV for the mailing tool: confirmed subscribers only, never anyone suppressed."""

import csv
import io

from fusion_site.spreadsheet import safe_cell
from privacy.models import WebsiteSubmission
from privacy.website.suppression import suppressed_email_indexes, suppression_index

HEADER = ["name", "email", "subscribed_at", "confirmed_at", "notice_version"]


def mailing_list_rows() -> list[list[str]]:
    suppressed = suppressed_email_indexes()
    entries = (
        WebsiteSubmission.objects.filter(
            kind=WebsiteSubmission.Kind.MAILING_LIST, status=WebsiteSubmission.Status.CONFIRMED
        )
        .select_related("notice")
        .order_by("created_at", "pk")
    )
    rows = []
    for entry in entries.iterator(chunk_size=2000):
        if suppression_index(entry.email) in suppressed:
            continue
        rows.append(
            [
                entry.name,
                entry.email,
                entry.consented_at.isoformat() if entry.consented_at else "",
                entry.confirmed_at.isoformat() if entry.confirmed_at else "",
                str(entry.notice.version) if entry.notice else "",
            ]
        )
    return rows


def mailing_list_csv() -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(HEADER)
    for row in mailing_list_rows():
        writer.writerow([safe_cell(cell) for cell in row])
    return buffer.getvalue()

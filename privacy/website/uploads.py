"""What a CV upload must be: a PDF, Word 97-2003 or Word document, by extension and by content."""

import io
import zipfile
from pathlib import PurePath

from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

MAX_CV_BYTES = 5 * 1024 * 1024
ALLOWED_EXTENSIONS = (".pdf", ".doc", ".docx")
_PDF_MAGIC = b"%PDF-"
_OLE2_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")  # the compound file every .doc is stored in
_ZIP_MAGIC = b"PK\x03\x04"


def _looks_like(extension: str, content: bytes) -> bool:
    if extension == ".pdf":
        return content.startswith(_PDF_MAGIC)
    if extension == ".doc":
        return content.startswith(_OLE2_MAGIC)
    if extension == ".docx":
        # Any zip starts PK; a Word document is a zip holding word/document.xml.
        if not content.startswith(_ZIP_MAGIC):
            return False
        try:
            with zipfile.ZipFile(io.BytesIO(content)) as archive:
                return "word/document.xml" in archive.namelist()
        except zipfile.BadZipFile:
            return False
    return False


def check_cv(cv: UploadedFile) -> None:
    """Raises ValidationError with a message for the visitor; reads at most MAX_CV_BYTES + 1."""
    extension = PurePath(cv.name or "").suffix.lower()
    if extension not in ALLOWED_EXTENSIONS:
        raise ValidationError("Your CV must be a PDF or Word file (.pdf, .doc or .docx).")
    if cv.size is not None and cv.size > MAX_CV_BYTES:
        raise ValidationError(
            f"Your CV is larger than {MAX_CV_BYTES // (1024 * 1024)} MB; please send a smaller file."
        )
    cv.seek(0)
    content = cv.read(MAX_CV_BYTES + 1)
    cv.seek(0)
    if len(content) > MAX_CV_BYTES:
        raise ValidationError(
            f"Your CV is larger than {MAX_CV_BYTES // (1024 * 1024)} MB; please send a smaller file."
        )
    if not content:
        raise ValidationError("Your CV file is empty.")
    if not _looks_like(extension, content):
        raise ValidationError(
            f"Your CV does not look like a real {extension} file. Please send a PDF or Word document."
        )

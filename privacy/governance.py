"""The rules of the impact assessments: the ICO's screening criteria, the fingerprint of an activity's data
map entry, an assessment's state, and the likelihood x severity risk matrix.

Screening: the ICO's list of processing "likely to result in high risk" (ico.org.uk, UK GDPR guidance,
Accountability and governance > Data protection impact assessments > Examples of processing likely to
result in high risk), which complements UK GDPR Art. 35(3) and the EDPB's guidelines WP248rev01, plus the
three cases Art. 35(3) names itself. Any criterion met means a DPIA is required; the ICO also calls a DPIA
good practice without one, which is why every activity of the data map has its place here.

Risk scale: the ICO's DPIA template scores the likelihood of harm (remote, possible, probable) and its
severity (minimal, significant, severe); overall risk low, medium or high. We score each 1-3 and read the
product: 1-2 low, 3-4 medium, 6-9 high (a probable significant harm, or a possible severe one, is high).
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from privacy import data_map as dm

if TYPE_CHECKING:
    from privacy.models.governance import AssessmentRisk, ImpactAssessment

SCREENING_CRITERIA: dict[str, str] = {
    # UK GDPR Art. 35(3)
    "evaluation_scoring": "Systematic and extensive evaluation of people, including profiling, on which "
    "decisions with legal or similarly significant effects are based (Art. 35(3)(a))",
    "special_category_large_scale": "Special category or criminal offence data on a large scale "
    "(Art. 35(3)(b))",
    "public_monitoring": "Systematic monitoring of a publicly accessible area on a large scale "
    "(Art. 35(3)(c))",
    # The ICO's list of processing likely to result in high risk
    "innovative_technology": "Innovative technology, or a novel application of existing technology "
    "(including AI), with another criterion",
    "denial_of_service": "Decisions about access to a product, service, opportunity or benefit based to "
    "any extent on automated decision-making or on special category data",
    "large_scale_profiling": "Profiling of individuals on a large scale",
    "biometric": "Biometric data to identify someone uniquely, with another criterion",
    "genetic": "Genetic data (other than by a GP or health professional for care)",
    "data_matching": "Combining, comparing or matching personal data from several sources",
    "invisible_processing": "Personal data not obtained from the person, where telling them would be "
    "impossible or a disproportionate effort",
    "tracking": "Tracking people's geolocation or behaviour, online or offline",
    "targeting_vulnerable": "Targeting children or other vulnerable people (marketing, profiling, "
    "automated decisions, online services offered to children)",
    "risk_of_physical_harm": "Processing whose breach could put someone's physical health or safety at risk",
}

LIKELIHOOD_LABELS = {1: "Remote", 2: "Possible", 3: "Probable"}
SEVERITY_LABELS = {1: "Minimal", 2: "Significant", 3: "Severe"}


class RiskLevel(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


def risk_level(likelihood: int, severity: int) -> RiskLevel:
    if not (1 <= likelihood <= 3 and 1 <= severity <= 3):
        raise ValueError("Likelihood and severity are each 1 to 3.")
    score = likelihood * severity
    if score >= 6:
        return RiskLevel.HIGH
    return RiskLevel.MEDIUM if score >= 3 else RiskLevel.LOW


# Fingerprints ------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-able form of the data map's dataclasses and enums, the same on every run."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def activity_of(name: str) -> dm.ProcessingActivity | None:
    return next((activity for activity in dm.ACTIVITIES if activity.name == name), None)


def activity_entry(activity: dm.ProcessingActivity) -> dict[str, Any]:
    """What the data map says about an activity: the activity itself and every model it names, with each
    personal field's category, lawful basis, retention, erasure action and purpose."""
    models = {label: dm.model_entry(label) for label in activity.models}
    return {
        "activity": _plain(activity),
        "models": {label: _plain(entry) if entry else None for label, entry in sorted(models.items())},
    }


def fingerprint(activity: dm.ProcessingActivity) -> str:
    """SHA-256 of the canonical JSON of the activity's data map entry (keys sorted, no spaces, UTF-8):
    the same entry always gives the same digest, any change to it another."""
    canonical = json.dumps(
        activity_entry(activity), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def current_fingerprints() -> dict[str, str]:
    return {activity.name: fingerprint(activity) for activity in dm.ACTIVITIES}


# States ------------------------------------------------------------------------------------------------


class AssessmentState(enum.StrEnum):
    NONE = "none"
    DRAFT = "draft"
    SIGNED_OFF = "signed_off"
    REVIEW_DUE = "review_due"
    CHANGED = "changed"

    @property
    def label(self) -> str:
        return {
            "none": "No assessment",
            "draft": "Draft",
            "signed_off": "Signed off",
            "review_due": "Review due",
            "changed": "Changed since sign-off",
        }[self.value]


def assessment_state(
    assessment: ImpactAssessment | None, *, today: datetime.date, current: str | None
) -> AssessmentState:
    """The state of an activity's assessment, ``current`` being the activity's fingerprint now (None when
    the data map no longer has it). A changed entry outranks a review date: the signed-off text no
    longer describes the processing."""
    if assessment is None:
        return AssessmentState.NONE
    if assessment.status != assessment.Status.SIGNED_OFF:
        return AssessmentState.DRAFT
    if current != assessment.fingerprint:
        return AssessmentState.CHANGED
    if assessment.review_on is not None and assessment.review_on <= today:
        return AssessmentState.REVIEW_DUE
    return AssessmentState.SIGNED_OFF


# The matrix --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixCell:
    likelihood: int
    severity: int
    level: RiskLevel
    before: tuple[int, ...]  # numbers of the risks here before their measures
    after: tuple[int, ...]  # and after

    @property
    def likelihood_label(self) -> str:
        return LIKELIHOOD_LABELS[self.likelihood]

    @property
    def severity_label(self) -> str:
        return SEVERITY_LABELS[self.severity]


@dataclass(frozen=True)
class RiskMatrix:
    rows: tuple[tuple[MatrixCell, ...], ...]  # likelihood from probable (top) to remote
    severities: tuple[str, ...]
    description: str  # the text alternative

    @property
    def cells(self) -> list[MatrixCell]:
        return [cell for row in self.rows for cell in row]


def risk_matrix(risks: Iterable[AssessmentRisk]) -> RiskMatrix:
    """The 3 x 3 grid of likelihood by severity, each cell with its level and the numbers (1, 2, ... in the
    order given) of the risks that sit there before and after their measures."""
    numbered = list(enumerate(risks, start=1))
    rows = []
    for likelihood in (3, 2, 1):
        row = []
        for severity in (1, 2, 3):
            row.append(
                MatrixCell(
                    likelihood,
                    severity,
                    risk_level(likelihood, severity),
                    tuple(n for n, r in numbered if (r.likelihood, r.severity) == (likelihood, severity)),
                    tuple(
                        n
                        for n, r in numbered
                        if (r.residual_likelihood, r.residual_severity) == (likelihood, severity)
                    ),
                )
            )
        rows.append(tuple(row))
    parts = [
        f"Risk {n}: {LIKELIHOOD_LABELS[r.likelihood].lower()} and {SEVERITY_LABELS[r.severity].lower()} "
        f"({risk_level(r.likelihood, r.severity)}), after measures "
        f"{LIKELIHOOD_LABELS[r.residual_likelihood].lower()} and "
        f"{SEVERITY_LABELS[r.residual_severity].lower()} "
        f"({risk_level(r.residual_likelihood, r.residual_severity)})."
        for n, r in numbered
    ]
    description = " ".join(parts) if parts else "No risks recorded yet."
    return RiskMatrix(tuple(rows), tuple(SEVERITY_LABELS[s] for s in (1, 2, 3)), description)

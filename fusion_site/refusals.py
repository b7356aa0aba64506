"""Why a user may not take an action now, said once for the page and the service.

A service that refuses an action for a reason a page can know beforehand (a missing role, a restriction,
four eyes) says so through a ``<thing>_refusal(...)`` function returning a ``Refusal`` or ``None``: the
page calls it to show either the button or the reason instead, and the service calls the same function
and raises with the same words, so what the page offers and what the service accepts cannot disagree.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Refusal:
    """A refused action and its reason, in words for the user ("Only a finance manager may finalise a
    bill run.")."""

    reason: str
    # The user's role never allows it (a refused request answers 403), rather than the thing's state now.
    forbidden: bool = False

    def __str__(self) -> str:
        return self.reason

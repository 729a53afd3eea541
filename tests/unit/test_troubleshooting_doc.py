"""docs/troubleshooting.md explains every reason a condition or an event can carry."""

from pathlib import Path

import pytest

from aiscaler.core.types import Reason
from aiscaler.handlers.status import OperatorReason, SpecReason

DOC = (Path(__file__).resolve().parents[2] / "docs" / "troubleshooting.md").read_text()


@pytest.mark.parametrize("reason", [*Reason, *OperatorReason, *SpecReason], ids=str)
def test_every_reason_is_in_the_troubleshooting_guide(reason):
    assert f"`{reason.value}`" in DOC

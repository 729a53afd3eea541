import pytest

from aiscaler.inputs import InputError
from aiscaler.metrics.ranges import duration_s, timestamp_s


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 604_800), ("36h", 129_600), ("1d12h", 129_600), ("90m", 5_400), ("2w", 1_209_600)],
)
def test_durations_as_prometheus_writes_them(text, seconds):
    assert duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "7 d", "d", "-1d", "0d", "1.5h", "7days", "1y"])
def test_anything_else_is_not_a_duration(text):
    with pytest.raises(InputError, match="is not a duration"):
        duration_s(text)


def test_times_are_iso_8601_utc_unless_they_say_otherwise():
    assert timestamp_s("2026-11-01T00:00:00Z", "--end") == 1_793_491_200
    assert timestamp_s("2026-11-01T00:00:00", "--end") == 1_793_491_200
    assert timestamp_s("2026-11-01T01:00:00+01:00", "--end") == 1_793_491_200
    with pytest.raises(InputError, match="--end 'yesterday': not an ISO-8601 time"):
        timestamp_s("yesterday", "--end")

from datetime import UTC, datetime

import pytest

from engramdb.temporal import annotate, query_range, resolve

ANCHOR = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)  # a Monday


def d(y, m, day):
    return datetime(y, m, day, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end", "gran"),
    [
        ("I went to a support group yesterday", d(2023, 5, 7), d(2023, 5, 8), "day"),
        ("we hiked last week", d(2023, 5, 1), d(2023, 5, 8), "week"),
        ("two weeks ago I painted", d(2023, 4, 24), d(2023, 5, 1), "week"),
        ("3 days ago", d(2023, 5, 5), d(2023, 5, 6), "day"),
        ("last Friday was fun", d(2023, 5, 5), d(2023, 5, 6), "day"),
        ("next Friday", d(2023, 5, 12), d(2023, 5, 13), "day"),
        ("last Monday", d(2023, 5, 1), d(2023, 5, 2), "day"),
        ("next month I move", d(2023, 6, 1), d(2023, 7, 1), "month"),
        ("I ran a marathon last year", d(2022, 1, 1), d(2023, 1, 1), "year"),
        ("last weekend", d(2023, 5, 6), d(2023, 5, 8), "weekend"),
        ("on 8 May, 2023", d(2023, 5, 8), d(2023, 5, 9), "day"),
        ("October 13, 2023", d(2023, 10, 13), d(2023, 10, 14), "day"),
        ("in July 2023", d(2023, 7, 1), d(2023, 8, 1), "month"),
        ("last summer", d(2022, 6, 1), d(2022, 9, 1), "season"),
        ("in June", d(2022, 6, 1), d(2022, 7, 1), "month"),  # past reading: the latest June before May 2023
        ("in 2021", d(2021, 1, 1), d(2022, 1, 1), "year"),
        ("a couple of months ago", d(2023, 3, 1), d(2023, 4, 1), "month"),
    ],
)
def test_resolve(text, start, end, gran):
    spans = resolve(text, ANCHOR)
    assert len(spans) == 1, spans
    s = spans[0]
    assert (s.start, s.end, s.granularity) == (start, end, gran)
    assert text[s.span[0] : s.span[1]] == s.text


def test_month_rollover_and_year_boundary():
    jan = datetime(2024, 1, 3, tzinfo=UTC)
    assert resolve("last month", jan)[0].start == d(2023, 12, 1)
    assert resolve("yesterday", jan)[0].start == d(2024, 1, 2)
    assert resolve("last December", jan)[0].start == d(2023, 12, 1)
    assert resolve("last week", jan)[0].start == d(2023, 12, 25)


def test_annotate_labels_and_no_match():
    assert annotate("I went there yesterday", ANCHOR) == "7 May 2023"
    assert annotate("see you next month, and last Friday was fun", ANCHOR) == "June 2023; 5 May 2023"
    assert annotate("nothing temporal here", ANCHOR) == ""
    assert annotate("yesterday", None) == ""
    assert annotate("Maybe we should go", ANCHOR) == ""  # 'may' alone is not a month


def test_resolve_requires_aware_anchor():
    with pytest.raises(ValueError):
        resolve("yesterday", datetime(2023, 5, 8))


def test_query_range():
    q = query_range("What did Melanie do in May 2023?", ANCHOR)
    assert q is not None and (q.start, q.end) == (d(2023, 5, 1), d(2023, 6, 1))
    assert q.contains(datetime(2023, 5, 20, tzinfo=UTC)) and not q.contains(d(2023, 6, 1))
    both = query_range("Where was John between August 11, 2023 and August 15, 2023?", ANCHOR)
    assert both is not None and (both.start, both.end) == (d(2023, 8, 11), d(2023, 8, 16))
    assert query_range("What is Caroline's favourite book?", ANCHOR) is None

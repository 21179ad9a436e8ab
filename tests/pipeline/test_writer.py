"""The writer's row-group split: no row lost, none written twice, positions exact."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from tracehive.pipeline.records import Prepared
from tracehive.pipeline.writer import Item, Writer, split


def _items(sizes):
    out, start = [], 0
    for lsn, n in enumerate(sizes, 1):
        out.append(Item(lsn, Prepared(pa.table({"v": list(range(start, start + n))}))))
        start += n
    return out


def _values(items):
    return [v for i in items for v in i.prepared.table.column("v").to_pylist()]


@given(st.lists(st.integers(1, 50), min_size=1, max_size=20), st.integers(1, 400))
def test_split_keeps_every_row_once(sizes, limit):
    items = _items(sizes)
    total = sum(sizes)
    now, later = split(items, limit)
    assert _values(now) + _values(later) == list(range(total))
    assert sum(i.prepared.rows for i in now) == min(limit, total)
    if later and later[0].offset:  # the record cut in two
        head, tail = now[-1], later[0]
        assert not head.complete and head.lsn == tail.lsn
        assert tail.offset == head.offset + head.prepared.rows


def test_writer_records_position_inside_a_split_record(tmp_path):
    calls = []
    written = []
    w = Writer(
        lambda t, m, end, partial: calls.append((t.num_rows if t else 0, end, partial)),
        lambda end, rows: written.append(rows),
        100,
        60.0,
        tmp_path,
    )
    w.start()
    for item in _items([30] * 8):  # 240 rows: two row groups of 100, 40 left
        w.put(item.lsn, item.prepared)
    w.stop()
    # 100 rows = records 1-3 + 10 rows of record 4;
    # then the 20 left of 4, 5, 6 + 20 of 7; then the rest
    assert calls[0] == (100, 3, 10)
    assert calls[1] == (100, 6, 20)
    assert calls[2] == (40, 8, 0)
    assert sum(written) == 240

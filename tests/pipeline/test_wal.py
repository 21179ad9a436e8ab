"""The WAL: records survive and come back in order, a torn tail is cut, trimming is safe."""

from __future__ import annotations

import os
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from tracehive.pipeline.records import Record
from tracehive.pipeline.wal import Wal, encode_record, read_segment


def _wal(tmp_path, seen=None, segment_bytes=1 << 20):
    seen = seen if seen is not None else []
    return Wal(tmp_path / "wal", segment_bytes, lambda lsn, item: seen.append((lsn, item)))


def test_append_is_durable_and_replayed_in_order(tmp_path):
    seen = []
    wal = _wal(tmp_path, seen)
    assert list(wal.recover(0)) == []
    wal.start()
    futs = [wal.append(f"payload-{i}".encode(), i) for i in range(50)]
    lsns = [f.result(timeout=5) for f in futs]
    wal.stop()
    assert lsns == list(range(1, 51))
    assert seen == [(i + 1, i) for i in range(50)]  # on_durable ran in lsn order
    wal2 = _wal(tmp_path)
    records = list(wal2.recover(0))
    assert [r[0] for r in records] == lsns
    assert records[7][1] == b"payload-7"
    assert [r[0] for r in _wal(tmp_path).recover(40)] == list(range(41, 51))
    assert wal2.next_lsn == 51


def test_group_commit_uses_fewer_fsyncs_than_records(tmp_path):
    wal = _wal(tmp_path)
    list(wal.recover(0))
    wal.start()
    barrier = threading.Barrier(8)
    futs = []

    def worker():
        barrier.wait()
        for i in range(50):
            futs.append(wal.append(b"x" * 100, i))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in futs:
        f.result(timeout=10)
    wal.stop()
    assert len(futs) == 400
    assert wal.fsyncs < 400


def test_torn_tail_is_cut_and_later_appends_follow(tmp_path):
    wal = _wal(tmp_path)
    list(wal.recover(0))
    wal.start()
    for i in range(3):
        wal.append(b"rec%d" % i, i).result(timeout=5)
    wal.stop()
    (segment,) = (tmp_path / "wal").glob("wal-*.log")
    with open(segment, "ab") as f:
        f.write(encode_record(4, b"half-written")[:-3])
    wal2 = _wal(tmp_path)
    assert [lsn for lsn, _ in wal2.recover(0)] == [1, 2, 3]
    wal2.start()
    assert wal2.append(b"after", None).result(timeout=5) == 4
    wal2.stop()
    assert [p for _, p in _wal(tmp_path).recover(0)] == [b"rec0", b"rec1", b"rec2", b"after"]


def test_trim_deletes_only_fully_applied_segments(tmp_path):
    wal = _wal(tmp_path, segment_bytes=50)
    list(wal.recover(0))
    wal.start()
    for i in range(10):
        wal.append(b"y" * 80, i).result(timeout=5)  # one record per segment
    wal.stop()
    assert len(list((tmp_path / "wal").glob("*.log"))) == 10
    wal.trim(5)
    remaining = list(_wal(tmp_path).recover(0))
    assert [lsn for lsn, _ in remaining] == [6, 7, 8, 9, 10]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_read_segment_never_fails_on_garbage(tmp_path_factory, garbage):
    path = tmp_path_factory.mktemp("w") / "wal-00000000000000000001.log"
    good = encode_record(1, b"ok")
    path.write_bytes(good + garbage)
    records = list(read_segment(path))
    assert records[0][:2] == (1, b"ok")
    for _lsn, payload, end in records:
        assert isinstance(payload, bytes) and end <= len(good) + len(garbage)


@given(
    st.builds(
        Record,
        kind=st.sampled_from(["traces", "logs", "metrics", "hc_event", "hc_batch"]),
        env_id=st.integers(0, 65535),
        body=st.binary(max_size=200),
        fmt=st.sampled_from(["protobuf", "json"]),
        encoding=st.sampled_from(["", "gzip", "zstd"]),
        dataset=st.text(max_size=20),
        now_ns=st.integers(0, 2**63 - 1),
        meta=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    )
)
def test_record_round_trip(record):
    assert Record.decode(record.encode()) == record


def test_segment_file_is_fsynced_directory(tmp_path):
    wal = _wal(tmp_path)
    list(wal.recover(0))
    wal.start()
    wal.append(b"z", None).result(timeout=5)
    wal.stop()
    assert os.listdir(tmp_path / "wal")

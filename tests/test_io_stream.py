"""The streamed Parquet writer (build_groups at register scale) writes the same bytes as the
in-memory writer: same schema, compression and row groups."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from pipeline.io import ROW_GROUP_ROWS, extended_parquet_writer, parquet_bytes_writer


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("n, batch_rows", [(0, 1000), (5, 2), (50_000, 7_001), (ROW_GROUP_ROWS + 12_345, 300_000)])
def test_streamed_equals_in_memory_bytes(tmp_path, n, batch_rows):
    rng = np.random.default_rng(n)
    src = pd.DataFrame(
        {
            "firm_id": pd.array([f"F{i % 997:05d}" for i in range(n)], dtype="string"),
            "year": rng.integers(2000, 2020, n).astype(np.int64),
            "y": rng.normal(size=n),
        }
    )
    parquet_bytes_writer(src)(tmp_path / "src.parquet")
    keep = rng.random(n) < 0.9
    kept = src.loc[keep].reset_index(drop=True)
    new = pd.DataFrame(
        {
            "first_treat": rng.integers(0, 3, len(kept)).astype(np.int64),
            "post": rng.random(len(kept)) < 0.5,
            "rel_time": pd.array(np.where(rng.random(len(kept)) < 0.3, None, 1), dtype="Int64"),
            "cluster_id": pd.array(np.where(rng.random(len(kept)) < 0.5, None, "CL01"), dtype="string"),
        }
    )
    parquet_bytes_writer(pd.concat([kept, new], axis=1))(tmp_path / "memory.parquet")
    extended_parquet_writer(tmp_path / "src.parquet", keep, new, batch_rows=batch_rows)(tmp_path / "stream.parquet")
    assert _sha(tmp_path / "memory.parquet") == _sha(tmp_path / "stream.parquet")


def test_mask_and_new_rows_must_agree(tmp_path):
    src = pd.DataFrame({"a": [1, 2, 3]})
    parquet_bytes_writer(src)(tmp_path / "s.parquet")
    with pytest.raises(ValueError, match="kept rows"):
        extended_parquet_writer(tmp_path / "s.parquet", np.array([True, False, True]), pd.DataFrame({"b": [1]}))
    with pytest.raises(ValueError, match="a mask of"):
        extended_parquet_writer(tmp_path / "s.parquet", np.array([True]), pd.DataFrame({"b": [1]}))(tmp_path / "o.parquet")


@pytest.mark.parametrize("cuts", [[], [1], [7_001, 150_000, 150_001, 299_999]])
def test_appended_pieces_equal_in_memory_bytes(tmp_path, cuts):
    """ParquetAppender: however the rows arrive, the file is the one written at once. A column
    with more distinct values than the dictionary page holds makes the writer fall back to plain
    encoding part-way through a row group, at a point that depends on chunk boundaries: the
    appender writes each row group from one contiguous chunk, as write_table does."""
    import pyarrow as pa

    from pipeline.io import ParquetAppender, frame_table

    n = 300_000
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"id": pd.array([f"F{i // 3:07d}" for i in range(n)], dtype="str"), "x": rng.normal(size=n),
                       "k": pd.array(np.where(rng.random(n) < 0.1, None, 1), dtype="Int64")})
    parquet_bytes_writer(df)(tmp_path / "memory.parquet")
    bounds = [0, *cuts, n]
    with ParquetAppender(tmp_path / "stream.parquet", frame_table(df.head(0)).schema) as w:
        for a, b in zip(bounds[:-1], bounds[1:]):
            part = frame_table(df.iloc[a:b])
            w.append(pa.Table.from_batches(part.to_batches(max_chunksize=997)))  # many chunks
    assert _sha(tmp_path / "memory.parquet") == _sha(tmp_path / "stream.parquet")


def test_appender_without_rows_equals_empty_frame(tmp_path):
    from pipeline.io import ParquetAppender, frame_table

    df = pd.DataFrame({"a": np.array([], np.int64), "s": pd.array([], dtype="str")})
    parquet_bytes_writer(df)(tmp_path / "memory.parquet")
    with ParquetAppender(tmp_path / "none.parquet", frame_table(df).schema):
        pass
    with ParquetAppender(tmp_path / "empty.parquet", frame_table(df).schema) as w:
        w.append(frame_table(df))
    assert _sha(tmp_path / "memory.parquet") == _sha(tmp_path / "none.parquet") == _sha(tmp_path / "empty.parquet")

"""File I/O: reading inputs by format and writing outputs atomically.

Outputs go through :class:`StageOutputs`: each file is written to a temporary file in its
target folder and renamed into place only when the whole stage succeeded, so a failed or
killed stage leaves either the previous complete outputs or none, never a partial file.
Writers are deterministic (sorted keys, no timestamps, fixed Parquet settings) so the same
inputs give byte-identical files.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from models.errors import RunEnvironmentError


def _json_default(o: Any):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return None if not np.isfinite(o) else float(o)
    if isinstance(o, (np.bool_,)):
        return bool(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if o is pd.NA or o is pd.NaT:
        return None
    raise TypeError(f"not JSON serialisable: {type(o)}")


def _clean_json(o: Any):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {str(k): _clean_json(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean_json(v) for v in o]
    return o


def dumps_json(obj: Any) -> str:
    return json.dumps(_clean_json(obj), sort_keys=True, indent=2, default=_json_default, allow_nan=False) + "\n"


PARQUET_OPTIONS = dict(compression="zstd", write_statistics=True, use_dictionary=True)


def frame_table(df: pd.DataFrame) -> pa.Table:
    """``df`` as the Arrow table the Parquet writers store: no index, no pandas metadata
    (it can vary; the schema is kept)."""
    return pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False).replace_schema_metadata(None)


def parquet_bytes_writer(df: pd.DataFrame) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        pq.write_table(frame_table(df), path, **PARQUET_OPTIONS)

    return write


ROW_GROUP_ROWS = 1024 * 1024  # pyarrow's default row group: streamed files equal write_table's bytes


class ParquetAppender:
    """One Parquet file written from tables appended in order, in row groups of
    ``ROW_GROUP_ROWS`` rows: the bytes equal :func:`parquet_bytes_writer` of all the rows at
    once (same schema, compression and row groups; how the rows arrive does not matter), while
    at most one row group waits in memory.

    >>> with ParquetAppender(path, schema) as w:
    ...     for part in parts:
    ...         w.append(part)
    """

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema = schema.remove_metadata()
        self._writer = pq.ParquetWriter(path, self.schema, **PARQUET_OPTIONS)
        self._buf: list[pa.Table] = []
        self._n_buf = 0
        self.num_rows = 0

    def append(self, table: pa.Table) -> None:
        table = table.replace_schema_metadata(None).cast(self.schema)
        self._buf.append(table)
        self._n_buf += table.num_rows
        self.num_rows += table.num_rows
        while self._n_buf >= ROW_GROUP_ROWS:
            whole = pa.concat_tables(self._buf)
            self._write(whole.slice(0, ROW_GROUP_ROWS))
            rest = whole.slice(ROW_GROUP_ROWS)
            # a compact copy of the rows left over, so that the appended table can be freed
            self._buf, self._n_buf = ([rest.combine_chunks()] if rest.num_rows else []), rest.num_rows

    def _write(self, group: pa.Table) -> None:
        # one contiguous array per column, as a slice of a whole in-memory table is: where the
        # writer falls back from dictionary to plain encoding depends on the chunk boundaries
        self._writer.write_table(group.combine_chunks(), row_group_size=ROW_GROUP_ROWS)

    def close(self) -> None:
        if self._writer is None:
            return
        try:
            if self._n_buf or not self.num_rows:
                self._write(pa.concat_tables(self._buf) if self._buf else self.schema.empty_table())
        finally:
            self._writer.close()
            self._writer = None
            self._buf, self._n_buf = [], 0

    def abort(self) -> None:
        """Close without writing the rows still waiting (the file is to be removed)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._buf, self._n_buf = [], 0

    def __enter__(self) -> "ParquetAppender":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close() if exc_type is None else self.abort()


def extended_parquet_writer(
    source: Path, keep: np.ndarray, new: pd.DataFrame, batch_rows: int = 262_144
) -> Callable[[Path], None]:
    """A writer of ``source``'s rows where ``keep`` (in file order), with the columns of ``new``
    (one row per kept row, same order) appended — streamed batch by batch, so the panel is never
    held whole in memory. The bytes equal :func:`parquet_bytes_writer` of the same frame (same
    schema, compression and row groups)."""
    source = Path(source)
    keep = np.asarray(keep, dtype=bool)
    new = new.reset_index(drop=True)
    if int(keep.sum()) != len(new):
        raise ValueError(f"extended_parquet_writer: {int(keep.sum())} kept rows but {len(new)} new rows")

    def write(path: Path) -> None:
        pf = pq.ParquetFile(source)
        if pf.metadata.num_rows != len(keep):
            raise ValueError(f"{source}: {pf.metadata.num_rows} rows but a mask of {len(keep)}")
        head = pd.concat([pf.schema_arrow.empty_table().to_pandas(), new.head(0)], axis=1)
        schema = pa.Schema.from_pandas(head, preserve_index=False)
        pos = kpos = 0
        with ParquetAppender(path, schema) as w:
            for batch in pf.iter_batches(batch_size=batch_rows):
                k = keep[pos : pos + batch.num_rows]
                pos += batch.num_rows
                t = pa.Table.from_batches([batch]).filter(pa.array(k))
                m = int(k.sum())
                extra = pa.Table.from_pandas(new.iloc[kpos : kpos + m].reset_index(drop=True), preserve_index=False)
                kpos += m
                for name in extra.column_names:
                    t = t.append_column(name, extra.column(name))
                w.append(t)

    return write


# errno values that mean "the machine or folder prevents writing", not a bug (exit 6)
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}
_IN_THE_WAY = {errno.EEXIST, errno.ENOTDIR, errno.EISDIR}
ENVIRONMENT_ERRNOS = _NO_SPACE | _NOT_WRITABLE | _IN_THE_WAY


def _blocking_file(folder: Path) -> Path | None:
    """The first existing non-folder on the way to ``folder`` (a file where a folder should be)."""
    for p in (folder, *folder.parents):
        if os.path.lexists(p):
            return None if p.is_dir() else p
    return None


def environment_error(exc: OSError, target: Path, action: str = "write") -> RunEnvironmentError | None:
    """``exc`` (raised while writing ``target``) as a :class:`RunEnvironmentError` naming the
    location and the fix, or None when it is not an environment problem (then it is a bug)."""
    if not isinstance(exc, OSError) or exc.errno not in ENVIRONMENT_ERRNOS:
        return None
    target = Path(target)
    where = Path(exc.filename) if getattr(exc, "filename", None) else target
    if exc.errno in _NO_SPACE:
        what = f" while writing {target.name}" if target.name else ""
        return RunEnvironmentError(
            f"no space left on the device (or quota exceeded) holding {target.parent.resolve()}{what} "
            f"({exc.strerror}). Nothing was written: the stage's partial temporaries were removed and earlier "
            "outputs are unchanged. Fix: free disk space (or raise the quota) there and run again."
        )
    if exc.errno in _NOT_WRITABLE:
        return RunEnvironmentError(
            f"cannot {action} {where}: {exc.strerror} (the output folder {target.parent} is read-only or not "
            "writable for this user). Nothing was written. Fix: make the folder writable (chmod u+w, or remount "
            "it read-write) or run from a copy of the project in a writable place."
        )
    blocker = _blocking_file(target.parent)
    if blocker is not None:
        return RunEnvironmentError(
            f"{blocker} is a file where the output folder {blocker.name}/ should be (needed for {target}). "
            "Nothing was written. Fix: move or delete that file, then run again."
        )
    if exc.errno == errno.EISDIR or (target.is_dir() and not target.is_symlink()):
        return RunEnvironmentError(
            f"{target} is a folder where an output file should be. Nothing was written. "
            "Fix: move or delete that folder, then run again."
        )
    return RunEnvironmentError(f"cannot {action} {where}: {exc.strerror}. Nothing was written.")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_mode(path: Path, *, directory: bool = False) -> None:
    """Give ``path`` the permissions an ordinary ``open()``/``mkdir()`` would (0666/0777 less
    the umask), not the 0600/0700 of mkstemp/mkdtemp: colleagues sharing a project folder can
    read the outputs exactly as their umask allows."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _tmp_prefix(target: Path) -> str:
    # the writer's pid in the name: a later run removes only temporaries of dead processes
    return f".{target.name}.{os.getpid()}."


class StageOutputs:
    """Collect a stage's outputs and commit them all at the end.

    >>> with StageOutputs() as out:
    ...     out.parquet(path, df)
    ...     out.json(path2, meta)
    # renamed into place here; on exception, temporaries are removed

    Temporaries get the permissions of an ordinary file (:func:`default_mode`). An
    :class:`OSError` that the environment causes (full disk, read-only or blocked folder)
    becomes :class:`~models.errors.RunEnvironmentError` (exit 6) naming the location.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def __enter__(self) -> "StageOutputs":
        return self

    def _tmp_for(self, target: Path) -> Path:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(target), suffix=".tmp", dir=target.parent)
            os.close(fd)
            default_mode(Path(tmp))
        except OSError as exc:
            raise (environment_error(exc, target, "create") or exc) from None
        return Path(tmp)

    def write(self, target: Path, writer: Callable[[Path], None]) -> None:
        target = Path(target)
        tmp = self._tmp_for(target)
        try:
            writer(tmp)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            env = environment_error(exc, target) if isinstance(exc, OSError) else None
            if env is not None:
                raise env from None
            raise
        self._pending.append((tmp, target))

    def stream(self, target: Path) -> Path:
        """A temporary file for ``target`` that the caller fills itself (e.g. a Parquet file
        written part by part, closed before the stage ends); committed or removed with the
        other outputs."""
        target = Path(target)
        tmp = self._tmp_for(target)
        self._pending.append((tmp, target))
        return tmp

    def text(self, target: Path, text: str) -> None:
        self.write(target, lambda p: p.write_text(text, encoding="utf-8", newline="\n"))

    def bytes(self, target: Path, data: bytes) -> None:
        self.write(target, lambda p: p.write_bytes(data))

    def json(self, target: Path, obj: Any) -> None:
        self.text(target, dumps_json(obj))

    def parquet(self, target: Path, df: pd.DataFrame) -> None:
        self.write(target, parquet_bytes_writer(df))

    def parquet_extended(self, target: Path, source: Path, keep: np.ndarray, new: pd.DataFrame) -> None:
        """``source``'s kept rows plus the columns of ``new``, streamed (see extended_parquet_writer)."""
        self.write(target, extended_parquet_writer(source, keep, new))

    def csv(self, target: Path, df: pd.DataFrame) -> None:
        self.write(target, lambda p: df.to_csv(p, index=False, lineterminator="\n", float_format="%.10g"))

    def commit(self) -> None:
        # every temporary is flushed to disk before the first rename: a full disk or an I/O
        # error surfaces here, while no output has been replaced yet
        for tmp, target in self._pending:
            try:
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
            except OSError as exc:
                self.abort()
                raise (environment_error(exc, target) or exc) from None
        for i, (tmp, target) in enumerate(self._pending):
            try:
                os.replace(tmp, target)
            except OSError as exc:
                self._pending = self._pending[i:]
                self.abort()
                raise (environment_error(exc, target, "replace") or exc) from None
            _remove_stale(target)
        self._pending.clear()

    def abort(self) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
            return
        first = self._pending[0][1] if self._pending else None
        self.abort()
        if first is not None and isinstance(exc, OSError) and not isinstance(exc, RunEnvironmentError):
            # e.g. a full disk met by a writer filling a streamed temporary (pyarrow names no file)
            env = environment_error(exc, first)
            if env is not None:
                raise env from None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    return True


def _remove_stale(target: Path) -> None:
    """Remove temporaries a killed earlier run left beside ``target`` (hidden dot-files).

    A temporary whose name carries the pid of a live process (``.<name>.<pid>.<random>.tmp``)
    belongs to a run still in progress and is never touched; one of a dead process, or of an
    older version without a pid in the name, is stale."""
    import shutil

    head = f".{target.name}."
    for stale in target.parent.glob(f".{target.name}.*"):
        if stale.suffix not in (".tmp", ".old"):
            continue
        pid = stale.name[len(head):].split(".", 1)[0]
        if pid.isdigit() and _pid_alive(int(pid)):
            continue
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)


def read_parquet(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    return pd.read_parquet(path, columns=columns)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def replace_directory(target: Path, fill: Callable[[StageOutputs, Path], None]) -> None:
    """Build a whole output directory beside ``target`` and swap it in.

    ``fill(outputs, tmpdir)`` writes the new content under ``tmpdir`` through ``outputs``.
    On success the old directory is renamed aside, the new one renamed into place and the old
    one deleted; a failure (or a kill) at any point leaves the previous complete directory,
    or none, never a mixture of old and new files.
    """
    import shutil

    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmpdir = Path(tempfile.mkdtemp(prefix=_tmp_prefix(target), suffix=".tmp", dir=target.parent))
        default_mode(tmpdir, directory=True)
    except OSError as exc:
        raise (environment_error(exc, target, "create") or exc) from None
    try:
        with StageOutputs() as out:
            fill(out, tmpdir)
        old = None
        try:
            if os.path.lexists(target) and not target.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a file is in the way of the output folder", str(target))
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=_tmp_prefix(target), suffix=".old", dir=target.parent))
                os.rmdir(old)
                os.replace(target, old)
            os.replace(tmpdir, target)
        except OSError as exc:
            if old is not None and not os.path.lexists(target):
                os.replace(old, target)  # put the previous complete directory back
            if exc.errno == errno.EISDIR and not target.is_dir():
                raise RunEnvironmentError(
                    f"{target} is a file where the output folder {target.name}/ should be. Nothing was written. "
                    "Fix: move or delete that file, then run again."
                ) from None
            raise (environment_error(exc, target, "replace") or exc) from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        _remove_stale(target)
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise


def prune(directory: Path, keep: set[Path]) -> None:
    """Delete files under ``directory`` that are not in ``keep`` (outputs of an earlier run
    with other settings), so a folder holds exactly what the last run released."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    keep = {Path(k).resolve() for k in keep}
    for f in sorted(directory.rglob("*")):
        if f.is_file() and f.resolve() not in keep:
            f.unlink()

"""A data set as a partitioned Parquet "lake", for portfolios larger than memory (issue 19).

Layout (shared by the single-machine and the Ray paths)::

    <lake>/_lake.json                                   n_customers, partitions, seed, months, end, tables,
                                                        ranges (first and last numeric customer id per partition),
                                                        rows (per table)
    <lake>/<table>/part=<k:05d>/data.parquet            table in customers, transactions, behaviors, credit_records

Every row of one customer, in every table, lies in the same partition ``k``, so anything computed per customer
(features, scores, explanations) can run partition by partition and be concatenated. The demo lake's partition
``k`` holds exactly ``synth.generate_portfolio(n_k, seed=seed + k, first_id=<first id of k>)``.

Interfaces:

- :func:`write_demo_lake` streams the demo generator into a lake, one partition in memory per worker
  (``jobs`` processes or Ray tasks), resumable (``resume``); the bytes do not depend on either.
- :func:`is_lake`, :func:`read_lake_meta`, :func:`partition_files`, :func:`partition_of`.
- :func:`read_customer` reads one customer's rows from every table by key (DuckDB over the Parquet files,
  only the customer's own partition when the id ranges are known), for a card without the portfolio.
- :func:`lake_features` writes the feature table of a lake to one Parquet file with DuckDB (views over the
  files, a memory limit, spilling to disk, partition by partition), equal to
  ``features.build_features_from_frames`` of the same portfolio; :func:`partition_features` does one
  partition (the unit a distributed worker runs) with the whole lake's cut-off (:func:`lake_as_of`).
- :func:`read_feature_rows`, :func:`lake_card` and :class:`LakeCards`: a customer's card (CLI ``explain``,
  API ``serve --lake``, the app with ``PROFILE_LAKE``) from its rows by key, its feature row and a seeded
  10k-row reference sample.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import time
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path

import duckdb
import pandas as pd

from profile_core.i18n import MessageError
from profile_core.sql import quote_ident, quote_literal

LAKE_TABLES = ("customers", "transactions", "behaviors", "credit_records")
META_FILE = "_lake.json"
DATA_FILE = "data.parquet"
ROW_GROUP_ROWS = 128_000  # rows per Parquet row group: bounded reads, still good compression
LAKE_FORMAT = 1


class LakeError(MessageError):
    """A problem with a lake a person can fix (``lake.*`` messages)."""


def partition_dir(lake: str | Path, table: str, k: int) -> Path:
    return Path(lake) / table / f"part={k:05d}"


def partition_sizes(n_customers: int, partitions: int) -> list[int]:
    """Customers per partition: as equal as possible, the first ``n % partitions`` one larger."""
    if partitions < 1 or partitions > n_customers:
        raise LakeError("lake.bad_partitions", partitions=partitions, customers=n_customers)
    base, extra = divmod(n_customers, partitions)
    return [base + (k < extra) for k in range(partitions)]


def is_lake(path: str | Path) -> bool:
    """Whether ``path`` is a lake folder (holds ``_lake.json``)."""
    return (Path(str(path)) / META_FILE).is_file()


def read_lake_meta(path: str | Path) -> dict:
    """The lake's ``_lake.json`` (n_customers, partitions, seed, months, end, tables, ranges, rows)."""
    path = Path(path)
    if not is_lake(path):
        raise LakeError("lake.not_a_lake", path=str(path))
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        int(meta["partitions"]), list(meta["tables"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise LakeError("lake.bad_meta", path=str(path), problem=type(exc).__name__) from exc
    return meta


class LakeGenError(LakeError):
    """A demo lake that cannot be generated or resumed as asked (``lake_gen.*`` messages)."""


PARTS_DIR = "_parts"  # per-partition markers of a run in progress (removed once _lake.json is written)
RUN_FILE = "_run.json"
_SPEC_FIELDS = ("format", "n_customers", "partitions", "seed", "months", "end")


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _wait_schema(shared, table: str):
    """Partition 0's schema of ``table``, published by the worker that generates partition 0."""
    while True:
        if shared.get("_failed"):  # the run stopped before partition 0 was written: nothing to wait for
            raise RuntimeError("partition 0 was not generated")
        schema = shared.get(table)
        if schema is not None:
            return schema
        time.sleep(0.05)


def _generate_partition(out: str, k: int, n_k: int, first: int, spec: dict, row_group_rows: int,
                        schemas: dict | None = None, shared=None) -> dict:
    """Generate and write partition ``k`` (one worker's unit): every table through a temporary file and
    ``os.replace``, then the marker ``_parts/<k>.json`` (spec, id range, rows per table) last, so a partition
    without its marker is incomplete. Every table is cast to partition 0's schema: ``schemas`` when known,
    else (``k > 0``) waited for in ``shared`` (a manager dict partition 0's worker fills), else (``k == 0``)
    taken from this partition and published to ``shared``. Returns the marker."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from profile_core.synth import generate_portfolio

    out_path = Path(out)
    portfolio = generate_portfolio(n_k, seed=spec["seed"] + k, months=spec["months"], end=spec["end"],
                                   first_id=first)
    rows = {}
    for table, frame in portfolio.tables().items():
        data = pa.Table.from_pandas(frame, preserve_index=False)
        schema = (schemas or {}).get(table)
        if schema is None and k > 0 and shared is not None:
            schema = _wait_schema(shared, table)
        if schema is None:  # partition 0 fixes the schema of every partition
            if shared is not None:
                shared[table] = data.schema
        else:  # one schema for every partition (a column all-null in one part stays typed)
            data = data.cast(schema)
        target = partition_dir(out_path, table, k)
        target.mkdir(parents=True, exist_ok=True)
        tmp = target / f".{DATA_FILE}.tmp"
        pq.write_table(data, tmp, compression="zstd", row_group_size=row_group_rows)
        os.replace(tmp, target / DATA_FILE)
        rows[table] = data.num_rows
        del data
    del portfolio
    gc.collect()
    marker = {"spec": spec, "k": k, "range": [first, first + n_k - 1], "rows": rows}
    _write_json(out_path / PARTS_DIR / f"{k}.json", marker)
    return marker


def _check_spec(out: Path, found: dict, spec: dict, fields: tuple[str, ...] = _SPEC_FIELDS) -> None:
    for field in fields:
        if found.get(field) != spec[field]:
            raise LakeGenError("lake_gen.mismatch", path=str(out), field=field, found=found.get(field),
                               wanted=spec[field])


def _done_partitions(out: Path, spec: dict, partitions: int) -> dict[int, dict]:
    """The complete partitions of an interrupted run at ``out``: marker present, readable and of the same
    spec, every table's data file present. A marker of another spec refuses the folder."""
    allowed = {*LAKE_TABLES, PARTS_DIR, META_FILE, f".{META_FILE}.tmp"}
    for entry in sorted(out.iterdir()):
        if entry.name not in allowed:
            raise LakeGenError("lake_gen.foreign", path=str(out), name=entry.name)
    try:
        run = json.loads((out / PARTS_DIR / RUN_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        run = None  # stopped before the run was recorded: the markers (if any) still say
    if isinstance(run, dict):
        _check_spec(out, run, spec, tuple(spec))
    done = {}
    for k in range(partitions):
        try:
            marker = json.loads((out / PARTS_DIR / f"{k}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # never finished (or unreadable): generated again
        if not isinstance(marker, dict) or not isinstance(marker.get("spec"), dict):
            continue
        _check_spec(out, marker["spec"], spec, tuple(spec))
        if all((partition_dir(out, table, k) / DATA_FILE).is_file() for table in LAKE_TABLES):
            done[k] = marker
    return done


def write_demo_lake(out: str | Path, n_customers: int, partitions: int, seed: int = 7, months: int = 12, *,
                    end: str = "2026-10-31", row_group_rows: int = ROW_GROUP_ROWS,
                    progress: Callable[[int, int], None] | None = None, jobs: int = 1, resume: bool = False,
                    engine: str = "local", ray_address: str | None = None) -> dict:
    """Generate the demo portfolio of ``n_customers`` into a lake at ``out`` (a new or empty folder):
    partition ``k`` is ``generate_portfolio(n_k, seed=seed + k, first_id=...)`` with consecutive id ranges,
    written as zstd Parquet (``row_group_rows`` per row group) through a temporary file, then its marker
    ``_parts/<k>.json`` (row counts). Every table of every partition has partition 0's schema. ``_lake.json``
    is written last (rows summed from the markers; ``_parts`` is then removed), so a folder with it is
    complete. The files do not depend on ``jobs``, ``engine`` or on interruptions: byte for byte the same.

    ``jobs``: partitions generated by that many worker processes (``spawn``); partition 0 is dispatched
    first and the others cast to its schema once it is known. ``engine="ray"``: partitions as Ray tasks
    (``profile_core.distributed.init_ray``, ``ray_address`` or ``$RAY_ADDRESS`` joins a cluster whose nodes
    share ``out``; without one a local Ray with ``jobs`` CPUs). ``resume=True``: a folder holding an
    interrupted run of the same arguments keeps its complete partitions (marker and every table's file) and
    generates the rest; a folder whose ``_lake.json`` or markers name other arguments is refused
    (:class:`LakeGenError`); a complete lake of the same arguments is returned as it is.

    Memory: at most ``jobs`` partitions at once, one in each worker (≈ 35 kB per customer plus the
    generator's working set), nothing of them in the calling process beyond the markers; keep partitions at
    ≤ 50k customers. ``progress(done, partitions)`` is called after each partition (``done`` counts complete
    ones, resumed ones included; in completion order). A script calling it with ``jobs > 1`` needs the
    ``if __name__ == "__main__":`` guard that spawned workers require. Returns the meta."""
    out = Path(out)
    if engine not in ("local", "ray"):
        raise LakeGenError("lake_gen.bad_engine", engine=engine)
    if int(jobs) < 1:
        raise LakeGenError("lake_gen.bad_jobs", jobs=jobs)
    sizes = partition_sizes(n_customers, partitions)
    spec = {"format": LAKE_FORMAT, "n_customers": n_customers, "partitions": len(sizes), "seed": seed,
            "months": months, "end": end, "row_group_rows": row_group_rows}
    done: dict[int, dict] = {}
    if out.exists() and any(out.iterdir()):
        if not resume:
            raise LakeGenError("lake_gen.not_empty", path=str(out))
        if is_lake(out):  # already complete: the same arguments or a refusal
            meta = read_lake_meta(out)
            _check_spec(out, meta, spec)
            shutil.rmtree(out / PARTS_DIR, ignore_errors=True)
            return meta
        done = _done_partitions(out, spec, len(sizes))
    (out / PARTS_DIR).mkdir(parents=True, exist_ok=True)
    _write_json(out / PARTS_DIR / RUN_FILE, spec)
    firsts = [1 + sum(sizes[:k]) for k in range(len(sizes))]
    todo = [k for k in range(len(sizes)) if k not in done]
    for k in todo:  # a stale marker of a partition whose files are incomplete: gone before it is rewritten
        (out / PARTS_DIR / f"{k}.json").unlink(missing_ok=True)
    schemas = None
    if todo and 0 in done:  # partition 0 fixed the schemas in the earlier run
        schemas = _file_schemas(out)
    args = {k: (str(out), k, sizes[k], firsts[k], spec, row_group_rows) for k in todo}

    def finished(marker: dict) -> None:
        done[marker["k"]] = marker
        if progress is not None:
            progress(len(done), len(sizes))

    if engine == "ray":
        _run_ray(args, todo, schemas, finished, jobs=int(jobs), address=ray_address)
    elif int(jobs) == 1 or len(todo) <= 1:
        for k in todo:
            marker = _generate_partition(*args[k], schemas=schemas)
            if k == 0:
                schemas = _file_schemas(out)
            finished(marker)
    else:
        _run_processes(args, todo, schemas, finished, jobs=int(jobs))

    rows = dict.fromkeys(LAKE_TABLES, 0)
    for k in range(len(sizes)):
        for table in LAKE_TABLES:
            rows[table] += int(done[k]["rows"][table])
    meta = {"format": LAKE_FORMAT, "n_customers": n_customers, "partitions": len(sizes), "seed": seed,
            "months": months, "end": end, "tables": list(LAKE_TABLES),
            "ranges": [[firsts[k], firsts[k] + sizes[k] - 1] for k in range(len(sizes))], "rows": rows}
    _write_json(out / META_FILE, meta)
    shutil.rmtree(out / PARTS_DIR, ignore_errors=True)
    return meta


def _file_schemas(out: Path) -> dict:
    import pyarrow.parquet as pq

    return {table: pq.read_schema(partition_dir(out, table, 0) / DATA_FILE) for table in LAKE_TABLES}


def _run_processes(args: dict, todo: list[int], schemas: dict | None, finished: Callable[[dict], None], *,
                   jobs: int) -> None:
    """``todo`` partitions in ``jobs`` spawned worker processes; partition 0 (when in ``todo``) first, the
    others wait for its schemas through a manager dict after generating their rows."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")
    manager = ctx.Manager() if schemas is None else None
    shared = manager.dict() if manager is not None else None
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx) as pool:
            pending = {pool.submit(_generate_partition, *args[k], schemas=schemas, shared=shared)
                       for k in sorted(todo)}  # FIFO: partition 0 is taken first
            try:
                while pending:
                    complete, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in complete:
                        finished(future.result())
            except BaseException:
                if shared is not None:
                    shared["_failed"] = True
                for future in pending:
                    future.cancel()
                raise
    finally:
        if manager is not None:
            manager.shutdown()


def _run_ray(args: dict, todo: list[int], schemas: dict | None, finished: Callable[[dict], None], *,
             jobs: int, address: str | None) -> None:
    """``todo`` partitions as Ray tasks (one CPU each); partition 0 first when its schemas are not known."""
    from profile_core.distributed import init_ray, require_ray

    ray = require_ray()
    started = init_ray(address, num_cpus=jobs)
    try:
        task = ray.remote(num_cpus=1)(_generate_partition)
        todo = sorted(todo)
        if schemas is None and todo and todo[0] == 0:
            finished(ray.get(task.remote(*args[0])))
            schemas = _file_schemas(Path(args[0][0]))
            todo = todo[1:]
        pending = [task.remote(*args[k], schemas=schemas) for k in todo]
        while pending:
            complete, pending = ray.wait(pending, num_returns=1)
            finished(ray.get(complete[0]))
    finally:
        if started:
            ray.shutdown()


def partition_files(lake: str | Path, table: str, k: int | None = None) -> str:
    """The Parquet path (``k``) or glob (every partition) of ``table``, for DuckDB's ``read_parquet``."""
    return str(Path(lake) / table / ("part=*" if k is None else f"part={k:05d}") / DATA_FILE)


def _scan(lake: str | Path, table: str, k: int | None = None) -> str:
    # the folder names are not a column: partition k is where a customer lives, not an attribute
    return f"read_parquet({quote_literal(partition_files(lake, table, k))}, hive_partitioning = false)"


def partition_of(meta: dict, customer_id: str) -> int | None:
    """The partition holding ``customer_id`` from the lake's id ranges (``C000123`` → 123), or None when the
    id has no number or the lake records no ranges (then every partition is searched)."""
    ranges = meta.get("ranges")
    match = re.fullmatch(r"[A-Za-z]*0*(\d+)", str(customer_id).strip())
    if not ranges or not match:
        return None
    number = int(match.group(1))
    k = bisect_right([r[0] for r in ranges], number) - 1
    return k if k >= 0 and ranges[k][0] <= number <= ranges[k][1] else None


def connect(memory_limit: str = "2GB", threads: int | None = None, temp_directory: str | Path | None = None
            ) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a memory limit, a thread count and a folder to spill to."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = {quote_literal(memory_limit)}")
    con.execute(f"SET threads = {int(threads or min(4, os.cpu_count() or 1))}")
    if temp_directory is not None:
        Path(temp_directory).mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = {quote_literal(str(temp_directory))}")
    return con


def read_customer(lake: str | Path, customer_id: str, tables: tuple[str, ...] | None = None, *,
                  con: duckdb.DuckDBPyConnection | None = None) -> dict[str, pd.DataFrame]:
    """One customer's rows of every table (canonical name → frame, rows in file order; an unknown id gives
    empty frames), read by key with DuckDB: only the customer's partition when ``_lake.json`` has id ranges,
    else every partition (Parquet statistics skip most row groups). Column types are the files' types, as
    ``pd.read_parquet`` gives them."""
    meta = read_lake_meta(lake)
    k = partition_of(meta, customer_id)
    own = con is None
    con = con or connect("512MB", threads=1)
    try:
        out = {}
        for table in tables or tuple(meta["tables"]):
            sql = f"SELECT * FROM {_scan(lake, table, k)} WHERE customer_id = ?"
            out[table] = con.sql(sql, params=[str(customer_id)]).to_arrow_table().to_pandas()
        return out
    finally:
        if own:
            con.close()


def lake_views(con: duckdb.DuckDBPyConnection, lake: str | Path, k: int | None = None,
               tables: tuple[str, ...] | None = None) -> dict[str, str]:
    """``CREATE OR REPLACE VIEW <table>`` over partition ``k`` (or all) of each table; returns name → view."""
    names = tables or tuple(read_lake_meta(lake)["tables"])
    for table in names:
        con.execute(f"CREATE OR REPLACE VIEW {quote_ident(table)} AS SELECT * FROM {_scan(lake, table, k)}")
    return {table: table for table in names}


def partition_features(lake: str | Path, k: int, out: str | Path, *, as_of: str,
                       observation_date: str | None = None, con: duckdb.DuckDBPyConnection | None = None,
                       memory_limit: str = "2GB", threads: int | None = None) -> str:
    """The feature table of partition ``k`` of ``lake`` to ``out`` (Parquet, sorted by customer id) with the
    given cut-off ``as_of`` (the whole lake's: :func:`lake_as_of`); the unit of work a Ray task runs.
    Returns ``out``."""
    from profile_core.features import copy_feature_table

    own = con is None
    con = con or connect(memory_limit, threads)
    try:
        copy_feature_table(con, lake_views(con, lake, k), out, as_of=as_of, observation_date=observation_date)
    finally:
        if own:
            con.close()
    return str(out)


def lake_as_of(lake: str | Path, con: duckdb.DuckDBPyConnection | None = None) -> str:
    """The default cut-off of the whole lake (the last event date across all partitions)."""
    from profile_core.features import data_as_of

    own = con is None
    con = con or connect()
    try:
        return data_as_of(con, lake_views(con, lake))
    finally:
        if own:
            con.close()


def lake_features(lake: str | Path, out: str | Path, *, as_of: str | None = None,
                  observation_date: str | None = None, memory_limit: str = "2GB", threads: int | None = None,
                  temp_directory: str | Path | None = None, per_partition: bool = True,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """The feature table of a lake written to one Parquet file ``out`` by DuckDB, never through pandas.

    ``per_partition`` (default): each partition through the same SQL (:func:`partition_features`) into a
    scratch folder beside ``out``, then one sorted ``COPY`` of them all, so DuckDB's working set is one
    partition's events whatever the lake's size; else the whole lake in one statement (DuckDB spills to
    ``temp_directory`` past ``memory_limit``). Both give the rows, columns, order and values
    ``build_features_from_frames`` gives for the same portfolio (one cut-off for every partition). The file
    is written under a temporary name and renamed. Returns a summary (rows, columns, as_of, seconds)."""
    from profile_core.features import FEATURE_META_KEY, copy_feature_table

    started = time.perf_counter()
    meta = read_lake_meta(lake)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(f".{out.name}.tmp")
    con = connect(memory_limit, threads, temp_directory or out.with_name(f".{out.name}.spill"))
    scratch = out.with_name(f".{out.name}.parts")
    try:
        cut = as_of or lake_as_of(lake, con)
        if per_partition and meta["partitions"] > 1:
            shutil.rmtree(scratch, ignore_errors=True)
            scratch.mkdir()
            for k in range(meta["partitions"]):
                partition_features(lake, k, scratch / f"part-{k:05d}.parquet", as_of=cut,
                                   observation_date=observation_date, con=con)
                if progress is not None:
                    progress(k + 1, meta["partitions"])
            parts = quote_literal(str(scratch / "part-*.parquet"))
            kv = con.execute(f"SELECT value FROM parquet_kv_metadata({quote_literal(str(scratch / 'part-00000.parquet'))})"
                             f" WHERE key = {quote_literal(FEATURE_META_KEY)}").fetchone()[0]
            con.execute(f"COPY (SELECT * FROM read_parquet({parts}) ORDER BY CAST(customer_id AS VARCHAR)) TO "
                        f"{quote_literal(str(tmp_out))} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000, "
                        f"KV_METADATA {{{quote_ident(FEATURE_META_KEY)}: {quote_literal(kv.decode())}}})")
        else:
            copy_feature_table(con, lake_views(con, lake), tmp_out, as_of=cut, observation_date=observation_date)
        os.replace(tmp_out, out)
        n_rows, n_cols = con.execute(f"SELECT count(*) FROM read_parquet({quote_literal(str(out))})").fetchone()[0], \
            len(con.execute(f"SELECT * FROM read_parquet({quote_literal(str(out))}) LIMIT 0").description)
    finally:
        con.close()
        shutil.rmtree(scratch, ignore_errors=True)
        tmp_out.unlink(missing_ok=True)
        if temp_directory is None:
            shutil.rmtree(out.with_name(f".{out.name}.spill"), ignore_errors=True)
    return {"rows": n_rows, "columns": n_cols, "as_of": cut, "partitions": meta["partitions"],
            "per_partition": per_partition, "seconds": time.perf_counter() - started, "out": str(out)}


def read_feature_rows(features: str | Path, customer_ids: list[str], *, sample: int = 0, seed: int = 0,
                      con: duckdb.DuckDBPyConnection | None = None) -> pd.DataFrame:
    """Rows of a feature file (``features --out``) by customer id, plus ``sample`` other rows drawn with
    DuckDB's seeded reservoir sample (the reference population for percentiles and SHAP backgrounds); the
    frame as :func:`profile_core.features.read_feature_file` gives it (dtypes, ``attrs``), asked-for rows
    first."""
    from profile_core.features import _plain_dtypes, feature_file_meta

    meta = feature_file_meta(features)
    if meta is None:
        raise LakeError("lake.not_features", path=str(features))
    own = con is None
    con = con or connect("1GB", threads=1)
    scan = f"read_parquet({quote_literal(str(features))})"
    try:
        ids = [str(c) for c in customer_ids]
        marks = ", ".join("?" for _ in ids)
        parts = [con.sql(f"SELECT * FROM {scan} WHERE customer_id IN ({marks or 'NULL'})", params=ids or None)
                 .to_arrow_table()]
        if sample:
            others = f"(SELECT * FROM {scan} WHERE customer_id NOT IN ({marks}))" if ids else scan
            parts.append(con.sql(f"SELECT * FROM {others} USING SAMPLE reservoir({int(sample)} ROWS) "
                                 f"REPEATABLE ({int(seed)}) ORDER BY customer_id", params=ids or None)
                         .to_arrow_table())
    finally:
        if own:
            con.close()
    import pyarrow as pa

    frame = _plain_dtypes(pa.concat_tables(parts).to_pandas())
    frame.attrs["as_of"] = meta.get("as_of")
    return frame


CARD_SAMPLE = 10_000  # feature rows a lake card compares a customer with (percentiles, SHAP background)


def lake_card(lake: str | Path, features: str | Path | None, bundle, customer_id: str, *, policy,
              lang: str = "zh", sample: int = CARD_SAMPLE, seed: int = 0):
    """One customer's panorama card (``profile.ProfileCard``) from a lake without loading the portfolio: the
    customer's rows of every table by key (:func:`read_customer`), its row of the lake's feature table
    ``features`` and a seeded sample of ``sample`` customers' rows (:func:`read_feature_rows`), against
    which the card's percentiles are computed and from which the SHAP background is drawn (:class:`LakeCards`,
    for one card). Unknown id: ``KeyError`` like ``CardContext.card``."""
    if features is None:
        raise LakeError("lake.not_features", path="features.parquet")
    return LakeCards(lake, features, bundle, sample=sample, seed=seed).card(customer_id, policy=policy, lang=lang)


class LakeCards:
    """Cards of a lake's customers one at a time, for a server or a page that must not load the portfolio:
    the reference sample (``sample`` feature rows: percentiles, SHAP background) and its predictions are read
    once; each :meth:`card` reads only its customer's rows by key (:func:`read_customer`) and its feature row.
    ``card`` has ``profile.CardContext.card``'s signature (unknown id: ``KeyError``).

    The card's what-if and recourse work on :meth:`context` (the customer's feature row first, the reference
    sample as the population); :meth:`similar` searches the customers most like one customer within the
    reference sample (embedded once, on first use), :meth:`customer_names` reads the names of those shown by
    key and :meth:`with_names` adds them masked as a policy requires."""

    def __init__(self, lake: str | Path, features: str | Path, bundle, *, sample: int | None = None,
                 seed: int = 0) -> None:
        from profile_core.explain import HeadExplainer

        sample = CARD_SAMPLE if sample is None else sample  # read now: a test or a deployment may set it
        self.lake, self.features, self.bundle, self.seed = Path(lake), Path(features), bundle, seed
        self.meta = read_lake_meta(lake)
        self.reference = read_feature_rows(features, [], sample=sample, seed=seed)
        self.reference_predictions = bundle.predict(self.reference)
        self.explainer = HeadExplainer(bundle, self.reference)
        self._similar = None  # similar.SimilarIndex of the reference sample, built on the first search

    def context(self, customer_id: str):
        """A ``profile.CardContext`` of one customer: their rows of every table by key, their feature row and
        prediction first, then the reference sample's (what percentiles and SHAP values are computed
        against). Unknown id: ``KeyError``."""
        from profile_core.i18n import t
        from profile_core.profile import CardContext

        cid = str(customer_id)
        row = read_feature_rows(self.features, [cid])
        if not len(row):
            raise KeyError(t("profile.unknown_customer", "en", customer=cid))
        keep = (self.reference["customer_id"].astype("str") != cid).to_numpy()
        frame = pd.concat([row, self.reference[keep]], ignore_index=True)
        frame.attrs = dict(row.attrs)
        predictions = pd.concat([self.bundle.predict(row), self.reference_predictions[keep]], ignore_index=True)
        return CardContext(read_customer(self.lake, cid), frame, predictions, explainer=self.explainer)

    def card(self, customer_id: str, *, policy, lang: str = "zh", top_reasons: int = 4):
        return self.context(customer_id).card(str(customer_id), policy=policy, lang=lang, top_reasons=top_reasons)

    def reference_index(self):
        """``similar.SimilarIndex`` of the reference sample (its rows embedded once; what a neighbour list
        shows: ``rm_id``, predictions, observed labels — no names: :meth:`customer_names` reads those shown)."""
        if self._similar is None:
            from profile_core.similar import build_index

            self._similar = build_index(self.bundle, self.reference, self.reference_predictions)
        return self._similar

    def similar(self, customer_id: str, policy, k: int = 5, *, row: pd.DataFrame | None = None) -> pd.DataFrame:
        """The ``k`` customers of the reference sample most like ``customer_id`` in the model's shared
        representation, among those ``policy`` may see (``similar.SimilarIndex.neighbours``: ``rank``,
        ``similarity``, ``customer_id``, ``rm_id``, head predictions, observed labels). A customer outside the
        sample is embedded from their feature row (``row``, else read by key) and searched against it; the lake
        is not read beyond that row. Unknown id: ``KeyError``; another RM's customer: ``privacy.AccessDenied``."""
        import numpy as np

        from profile_core.similar import SimilarIndex, build_index

        base, cid = self.reference_index(), str(customer_id)
        if base.customers["customer_id"].eq(cid).any():
            return base.neighbours(cid, policy, k=k)
        if row is None:
            row = read_feature_rows(self.features, [cid])
        row = row[row["customer_id"].astype("str") == cid]
        if not len(row):
            from profile_core.i18n import t

            raise KeyError(t("profile.unknown_customer", "en", customer=cid))
        one = build_index(self.bundle, row.reset_index(drop=True), self.bundle.predict(row.reset_index(drop=True)))
        joined = SimilarIndex(pd.concat([base.customers, one.customers[base.customers.columns]], ignore_index=True),
                              np.concatenate([base.embeddings, one.embeddings]), base.tasks)
        return joined.neighbours(cid, policy, k=k)

    def customer_names(self, customer_ids: list[str]) -> pd.DataFrame:
        """``customer_id``, ``rm_id`` and ``name`` of a few customers from the lake's customers table, read by key
        (each from their own partition when the lake records id ranges); unknown ids are left out."""
        ids = [str(c) for c in customer_ids]
        by_part: dict[int | None, list[str]] = {}
        for cid in ids:
            by_part.setdefault(partition_of(self.meta, cid), []).append(cid)
        con = connect("256MB", threads=1)
        try:
            parts = []
            for k, wanted in by_part.items():
                marks = ", ".join("?" for _ in wanted)
                parts.append(con.sql(f"SELECT * FROM {_scan(self.lake, 'customers', k)} "
                                     f"WHERE customer_id IN ({marks})", params=wanted)
                             .to_arrow_table().to_pandas())
        finally:
            con.close()
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"customer_id": []})
        keep = [c for c in ("customer_id", "rm_id", "name") if c in frame.columns]
        return frame[keep].assign(customer_id=frame["customer_id"].astype("str")).reset_index(drop=True)

    @staticmethod
    def with_names(found: pd.DataFrame, names: pd.DataFrame, policy) -> pd.DataFrame:
        """``found`` (a neighbour list) with a ``name`` column after ``customer_id`` from ``names``
        (:meth:`customer_names`), masked as ``policy`` requires (``privacy.mask_frame``); "—" where unknown."""
        from profile_core.privacy import mask_frame

        out = found.copy()
        if "name" not in names.columns or "name" in out.columns:
            return out
        masked = mask_frame(names, policy)
        shown = dict(zip(masked["customer_id"].astype("str"), masked["name"], strict=True))
        out.insert(int(out.columns.get_loc("customer_id")) + 1, "name",
                   [shown.get(str(c), "—") for c in out["customer_id"]])
        return out

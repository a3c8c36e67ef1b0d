"""Bounded-memory training from a feature Parquet file (issue 19): the feature table is streamed, never held.

``train.fit`` holds the whole feature frame and its float32 model matrix (~5.2 GB peak per million
customers with the demo's 730 binned inputs). :func:`train_streamed` holds only samples of fixed size and
one chunk of training rows, so its peak does not grow with the number of customers:

1. **One pass over the file** in record batches of at most ``chunk_rows`` rows (file order). Every row gets
   a seeded hash of its customer id, ``u`` in [0, 1) (``split_keys``: the same customer lands in the same
   split whatever the file's order or row groups). With ``N`` rows, ``v = min(val_fraction, eval_rows / N)``
   and ``t = min(test_fraction, eval_rows / N)``:

   - validation: ``u < v`` and test: ``v ≤ u < v + t``, kept in memory (≈ ``eval_rows`` each at most);
   - training: every other row; only their positions in the file are kept (4 bytes per customer, the one
     thing that grows with ``N``: 4 MB per million);
   - the **fit sample**: training rows with ``u < v + t + s``, ``s = fit_rows / N`` (≈ ``fit_rows`` rows;
     every training row when the file is small). The input columns, the tasks, the ``Preprocessor``, the
     regression labels' mean/std and the drift reference are fitted on it, as ``fit`` fits them on its
     train split.

2. **Each epoch** visits the row groups in a seeded random order, reads each in record batches of at most
   ``chunk_rows`` rows (only the model's inputs and labels) and keeps their training rows in a buffer.
   Whenever the buffer holds a chunk (``chunk_rows`` rounded down to whole batches) it is shuffled, one
   chunk is transformed (``train.transform_rows``) and trained on with ``train._train_epoch``, the very
   per-batch step of ``fit``; the rest is carried into the next chunk. Then ``train._evaluate`` on the
   validation sample and ``train._Checkpoints`` (model selection, early stopping) as in ``fit``.

3. The result is a ``train.TrainResult`` written with ``bundle.save_bundle``: the same sealed bundle.

What differs from ``fit``: the split is by id hash rather than stratified on the first binary label; the
preprocessor is fitted on the sample; rows are shuffled within a buffer of one to two chunks (the row groups
in random order), not across the whole file; the epoch's train losses are averaged per chunk.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from profile_core import train as T
from profile_core.i18n import MessageError

FIT_ROWS = 100_000  # rows the preprocessor and label statistics are fitted on
EVAL_ROWS = 50_000  # validation and test samples are each capped near this many rows
CHUNK_ROWS = 50_000  # rows read at once and trained on at once
AUTO_ROWS = 1_000_000  # the CLI streams a feature file or lake with more customers than this


class StreamError(MessageError):
    """A streamed-training problem a person can fix (``stream.*`` messages)."""


@dataclass
class StreamStats:
    """What the streamed run read and held (stored in the summary and the bundle's data block)."""

    rows: int = 0  # rows of the file
    row_groups: int = 0
    fit_rows: int = 0  # the fit sample (preprocessor, label statistics, drift reference)
    train_rows: int = 0
    val_rows: int = 0
    test_rows: int = 0
    chunk_rows: int = 0  # the setting
    max_read_rows: int = 0  # the largest record batch read from the file
    max_chunk_rows: int = 0  # the largest chunk handed to the trainer
    chunks_per_epoch: int = 0
    epochs: int = 0


def split_keys(ids: pd.Series, seed: int) -> np.ndarray:
    """A seeded uniform number in [0, 1) per id (its 64-bit hash with a key from ``seed``)."""
    h = pd.util.hash_pandas_object(ids.astype("str"), index=False, hash_key=f"{seed % 10**16:016d}")
    return (h.to_numpy() >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def stream_wanted(data: str | Path) -> bool:
    """Whether the CLI streams ``data`` by itself: a feature file or lake with more than ``AUTO_ROWS`` rows."""
    from profile_core.features import feature_file_meta
    from profile_core.lake import is_lake, read_lake_meta

    if is_lake(data):
        return int(read_lake_meta(data).get("n_customers", 0)) > AUTO_ROWS
    if feature_file_meta(data) is not None:
        import pyarrow.parquet as pq

        return pq.ParquetFile(data).metadata.num_rows > AUTO_ROWS
    return False


def _frame(batch) -> pd.DataFrame:
    """A record batch as ``features.read_feature_file`` types its frame (numpy ints, NaN for missing)."""
    from profile_core.features import _plain_dtypes

    return _plain_dtypes(batch.to_pandas())


def _concat(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)


@dataclass
class _Scan:
    fit: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    positions: dict[str, np.ndarray]  # split → row positions in the file (train: every training row)
    fingerprint: str
    rows: int
    row_groups: int
    max_read_rows: int


def scan_file(path: str | Path, *, seed: int, val_fraction: float, test_fraction: float,
              fit_rows: int = FIT_ROWS, eval_rows: int = EVAL_ROWS, chunk_rows: int = CHUNK_ROWS) -> _Scan:
    """The one pass of step 1 (module doc): the validation, test and fit samples, the training rows'
    positions and the data fingerprint (``pipeline.data_fingerprint`` of the whole frame, computed batch by
    batch)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, pre_buffer=False)  # see scoring._parquet_chunks
    n = pf.metadata.num_rows
    v = min(val_fraction, eval_rows / max(n, 1))
    t = min(test_fraction, eval_rows / max(n, 1))
    s = min(1.0 - v - t, fit_rows / max(n, 1))
    columns = pf.schema_arrow.names
    h = hashlib.sha256(",".join(columns).encode())
    parts: dict[str, list[pd.DataFrame]] = {"fit": [], "val": [], "test": []}
    pos: dict[str, list[np.ndarray]] = {"fit": [], "val": [], "test": [], "train": []}
    offset, max_read = 0, 0
    pos_type = np.uint32 if n < 2**32 else np.int64
    for batch in pf.iter_batches(batch_size=chunk_rows):
        max_read = max(max_read, batch.num_rows)
        frame = _frame(batch)
        h.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
        here = np.arange(offset, offset + len(frame), dtype=np.int64)
        ids = frame["customer_id"] if "customer_id" in frame.columns else pd.Series(here)
        u = split_keys(ids, seed)
        masks = {"val": u < v, "test": (u >= v) & (u < v + t), "train": u >= v + t}
        masks["fit"] = masks["train"] & (u < v + t + s)
        for name, mask in masks.items():
            pos[name].append(here[mask].astype(pos_type if name == "train" else np.int64))
            if name != "train" and mask.any():
                parts[name].append(frame[mask].reset_index(drop=True))
        offset += len(frame)
    return _Scan(fit=_concat(parts["fit"], columns), val=_concat(parts["val"], columns),
                 test=_concat(parts["test"], columns), positions={k: np.concatenate(p) if p else np.array([], int)
                                                                    for k, p in pos.items()},
                 fingerprint=h.hexdigest()[:16], rows=n, row_groups=pf.num_row_groups, max_read_rows=max_read)


def train_chunks(path: str | Path, columns: list[str], train_positions: np.ndarray, chunk: int,
                 rng: np.random.Generator, *, read_rows: int, stats: StreamStats | None = None
                 ) -> Iterator[pd.DataFrame]:
    """One epoch's training rows in shuffled chunks of ``chunk`` rows (the last one smaller): row groups in
    ``rng``'s random order, each read in record batches of at most ``read_rows`` rows (only ``columns``), its
    training rows (``train_positions``, sorted) into a buffer that is shuffled whenever it holds a chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path, pre_buffer=False)  # see scoring._parquet_chunks
    meta = pf.metadata
    sizes = np.array([meta.row_group(g).num_rows for g in range(pf.num_row_groups)], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    buffer: list[pd.DataFrame] = []
    held = 0
    for g in rng.permutation(pf.num_row_groups):
        lo, hi = np.searchsorted(train_positions, [starts[g], starts[g] + sizes[g]])
        if lo == hi:
            continue
        base = int(starts[g])
        for batch in pf.iter_batches(batch_size=read_rows, row_groups=[int(g)], columns=columns):
            if stats is not None:
                stats.max_read_rows = max(stats.max_read_rows, batch.num_rows)
            a, b = np.searchsorted(train_positions, [base, base + batch.num_rows])
            if b > a:
                local = (train_positions[a:b].astype(np.int64) - base)
                buffer.append(_frame(batch.take(pa.array(local))))
                held += b - a
            base += batch.num_rows
            while held >= chunk:
                whole = _concat(buffer, columns)
                perm = rng.permutation(len(whole))
                rest = whole.iloc[perm[chunk:]].reset_index(drop=True)
                buffer, held = ([rest] if len(rest) else []), len(rest)
                yield whole.iloc[perm[:chunk]].reset_index(drop=True)
    if held:
        whole = _concat(buffer, columns)
        yield whole.iloc[rng.permutation(len(whole))].reset_index(drop=True)


def _labels(frame: pd.DataFrame, tasks) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(original units, as trained on) per task, exactly as ``fit`` encodes them."""
    from profile_core.tasks import encode_labels

    raw = encode_labels(frame, tasks, standardize=False)
    return raw, {t.name: (raw[t.name] - t.mean) / t.std if t.kind == "regression" else raw[t.name] for t in tasks}


def fit_streamed(path: str | Path, tasks, config: T.TrainConfig, scan: _Scan, *,
                 chunk_rows: int = CHUNK_ROWS, numeric: list[str] | None = None,
                 categorical: list[str] | None = None, callback: Callable[[T.EpochReport], None] | None = None,
                 ) -> tuple[T.TrainResult, StreamStats]:
    """``train.fit`` over the file at ``path`` with the samples and positions of ``scan`` (module doc)."""
    from profile_core.features import Preprocessor
    from profile_core.nets import build_net
    from profile_core.tasks import (
        EngineError,
        check_labels,
        label_stats,
        labelled,
        task_metrics,
        with_label_stats,
    )
    from profile_core.weighting import build_weighting

    if not tasks:
        raise EngineError("engine.no_tasks")
    for task in tasks:
        if task.label not in scan.fit.columns:
            raise EngineError("engine.missing_label", task=task.name, column=task.label)
    unknown = set(config.task_weights) - {t.name for t in tasks}
    if unknown:
        raise EngineError("engine.unknown_task", task=", ".join(sorted(unknown)))
    tasks = [replace(t, weight=config.task_weights.get(t.name, t.weight)) for t in tasks]
    numeric, categorical = T.feature_columns(scan.fit, tasks, numeric, categorical, config)
    n_fit, n_val, n_test = len(scan.fit), len(scan.val), len(scan.test)
    both = pd.concat([scan.fit, scan.val, scan.test], ignore_index=True)
    check_labels(both, tasks, {"train": np.arange(n_fit), "val": np.arange(n_fit, n_fit + n_val),
                               "test": np.arange(n_fit + n_val, len(both))})
    del both
    preprocessor = Preprocessor(config.numeric_encoding, config.n_bins, config.max_categories).fit(
        scan.fit, numeric, categorical)
    tasks = with_label_stats(tasks, scan.fit)
    for task in tasks:
        if not labelled(task, _labels(scan.fit, [task])[0][task.name]).any():
            raise EngineError("engine.no_labels", task=task.name, column=task.label)
    columns = list(dict.fromkeys([*numeric, *categorical, *(t.label for t in tasks)]))
    size = max(config.batch_size, chunk_rows // config.batch_size * config.batch_size)
    stats = StreamStats(rows=scan.rows, row_groups=scan.row_groups, fit_rows=n_fit,
                        train_rows=len(scan.positions["train"]), val_rows=n_val, test_rows=n_test,
                        chunk_rows=chunk_rows, max_read_rows=scan.max_read_rows)

    device = T.resolve_device(config.device)
    started = time.perf_counter()
    with T._run_settings(config, device):
        held: dict[str, tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, np.ndarray]]] = {}
        for name, frame in (("val", scan.val), ("test", scan.test)):
            raw, encoded = _labels(frame, tasks)
            held[name] = (torch.as_tensor(T.transform_rows(preprocessor, frame)).to(device),
                          {t: torch.as_tensor(y).to(device) for t, y in encoded.items()}, raw)
        X_val, Y_val, raw_val = held["val"]
        val_rows = torch.arange(n_val, device=device)
        history: list[T.EpochReport] = []
        train_time, cancelled = 0.0, False
        n_train = stats.train_rows
        members = []
        best_epochs: dict[str, int] = {}
        for member in range(config.ensemble):
            model = build_net(config.arch, config.net_config(X_val.shape[1], tasks)).to(device)
            weighting = build_weighting(config.weighting, tasks).to(device)
            optimizer = torch.optim.AdamW(T.optimizer_groups(model, weighting, config.weight_decay), lr=config.lr,
                                          foreach=True)
            rng = np.random.default_rng([config.seed, member])
            checkpoints = T._Checkpoints(tasks, config.selection, config.min_delta, config.patience)
            for epoch in range(1, config.max_epochs + 1):
                t0 = time.perf_counter()
                sums: dict[str, float] = {}
                steps: dict[str, int] = {}
                weight_sums: dict[str, float] = {}
                n_steps, n_chunks = 0, 0
                for chunk in train_chunks(path, columns, scan.positions["train"], size, rng,
                                          read_rows=chunk_rows, stats=stats):
                    n_chunks += 1
                    stats.max_chunk_rows = max(stats.max_chunk_rows, len(chunk))
                    _, encoded = _labels(chunk, tasks)
                    X = torch.as_tensor(T.transform_rows(preprocessor, chunk)).to(device)
                    Y = {t: torch.as_tensor(y).to(device) for t, y in encoded.items()}
                    complete = frozenset(t.name for t in tasks if labelled(t, encoded[t.name]).all())
                    order = torch.arange(len(chunk), device=device)  # the chunk is shuffled already
                    losses, weights = T._train_epoch(model, weighting, optimizer, X, Y, order, tasks, complete,
                                                     config.batch_size)
                    k = math.ceil(len(chunk) / config.batch_size)  # batches in this chunk
                    for t, loss in losses.items():
                        sums[t] = sums.get(t, 0.0) + loss * k
                        steps[t] = steps.get(t, 0) + k
                    for t, w in weights.items():
                        weight_sums[t] = weight_sums.get(t, 0.0) + w * k
                    n_steps += k
                    del X, Y
                train_losses = {t: sums[t] / steps[t] for t in sums}
                weights = {t: w / max(n_steps, 1) for t, w in weight_sums.items()}
                stats.chunks_per_epoch, stats.epochs = n_chunks, stats.epochs + 1
                weighting.end_epoch(train_losses)
                t_train = time.perf_counter() - t0
                train_time += t_train

                report = T.close_epoch(model, checkpoints,
                                       T.Validation(X_val, Y_val, val_rows, raw_val, np.arange(n_val)),
                                       tasks, epoch=epoch, member=member, train_losses=train_losses,
                                       weights=weights, started=t0, train_seconds=t_train, samples=n_train)
                history.append(report)
                if callback is not None:
                    callback(report)
                if checkpoints.stalled:
                    break
            members.append(checkpoints.restore(model, config.arch))
            if not best_epochs:
                best_epochs = checkpoints.best_epochs()
        model = members[0] if len(members) == 1 else T.ensemble_of(members, config.arch).to(device)
        model.eval()
        metrics = {}
        for name in ("val", "test"):
            X_h, _, raw_h = held[name]
            if len(X_h):
                preds = T.predict(model, X_h, tasks)
                metrics[name] = {t.name: task_metrics(t, raw_h[t.name], preds[t.name]) for t in tasks}
    excluded = {c: why for c, why in T.excluded_inputs(scan.fit, tasks, config).items()
                if c not in numeric and c not in categorical}
    result = T.TrainResult(
        model=model, preprocessor=preprocessor, tasks=tasks, config=config, history=history, metrics=metrics,
        split={"train": scan.positions["train"], "val": scan.positions["val"], "test": scan.positions["test"]},
        label_stats=label_stats(tasks), device=str(device), train_seconds=time.perf_counter() - started,
        samples_per_second=n_train * len(history) / max(train_time, 1e-9),
        best_epoch=max(best_epochs.values(), default=0), cancelled=cancelled, best_epochs=best_epochs,
        feature_names=list(preprocessor.output_names), excluded=excluded)
    return result, stats


def unsupported(*, baselines: bool = False, tune: float | None = None, hybrid: str = "none") -> None:
    """Refuse the options that need the whole feature frame in memory (CLI ``--baselines``, ``--tune``,
    ``--hybrid blend``: LightGBM and the tuner fit on every row)."""
    for option, used in (("--baselines", baselines), ("--tune", bool(tune)), ("--hybrid", hybrid != "none")):
        if used:
            raise StreamError("stream.unsupported", option=option)


def _check_setting(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or value < minimum:
        raise StreamError("stream.bad_setting", name=name, value=value, minimum=minimum)


def train_streamed(data: str | Path, out: str | Path, *, tasks: Iterable[str] | None = None,
                   roles: dict[str, str] | None = None, use_age: bool = False, arch: str = "shared-bottom",
                   weighting: str = "uncertainty", epochs: int | None = None, seed: int = 42, device: str = "auto",
                   chunk_rows: int = CHUNK_ROWS, fit_rows: int = FIT_ROWS, eval_rows: int = EVAL_ROWS,
                   progress: bool = False, callback: Callable | None = None, settings: dict | None = None) -> dict:
    """``pipeline.train_and_save`` for a feature file (or a lake, whose features are first written to a
    scratch file) in bounded memory (module doc); the same bundle and summary, plus ``summary["stream"]``
    (:class:`StreamStats`)."""
    from profile_core.features import feature_file_meta
    from profile_core.lake import is_lake, lake_features

    for name, value, minimum in (("chunk_rows", chunk_rows, 1), ("fit_rows", fit_rows, 10),
                                 ("eval_rows", eval_rows, 1)):
        _check_setting(name, value, minimum)
    kwargs = {"tasks": tasks, "roles": roles, "use_age": use_age, "arch": arch, "weighting": weighting,
              "epochs": epochs, "seed": seed, "device": device, "chunk_rows": chunk_rows, "fit_rows": fit_rows,
              "eval_rows": eval_rows, "progress": progress, "callback": callback, "settings": settings}
    if is_lake(data):
        with tempfile.TemporaryDirectory(prefix="features-") as tmp:
            lake_features(data, Path(tmp) / "features.parquet")
            return _train_file(Path(tmp) / "features.parquet", out, str(data), **kwargs)
    if feature_file_meta(data) is None:
        raise StreamError("stream.not_features", path=str(data))
    return _train_file(Path(data), out, str(data), **kwargs)


def _train_file(path: Path, out: str | Path, name: str, *, tasks, roles, use_age, arch, weighting, epochs, seed,
                device, chunk_rows, fit_rows, eval_rows, progress, callback, settings) -> dict:
    from profile_core.bundle import save_bundle
    from profile_core.features import feature_file_meta
    from profile_core.ingest import label_columns
    from profile_core.monitor import reference_snapshot
    from profile_core.pipeline import DataSource, training_plan

    unsupported(hybrid=(settings or {}).get("hybrid", "none"))
    settings = {**(settings or {}), "hybrid": "none"}  # LightGBM needs every training row in memory: the net alone
    base = T.TrainConfig(seed=seed, **settings)
    scan = scan_file(path, seed=seed, val_fraction=base.val_fraction, test_fraction=base.test_fraction,
                     fit_rows=fit_rows, eval_rows=eval_rows, chunk_rows=chunk_rows)
    if not len(scan.val):
        raise StreamError("stream.empty_split", path=name, rows=scan.rows)
    source = DataSource({}, label_columns({"customers": scan.fit}), name=name, fingerprint=scan.fingerprint)
    specs, config = training_plan(source, scan.fit, tasks=tasks, roles=roles, use_age=use_age, arch=arch,
                                  weighting=weighting, seed=seed, device=device,
                                  **({"max_epochs": epochs} if epochs else {}), **(settings or {}))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.max_epochs, desc="epochs (streamed)", unit="epoch")

    def report(epoch_report: T.EpochReport) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(val_loss=f"{epoch_report.val_loss:.4f}")
        if callback is not None:
            callback(epoch_report)

    result, stats = fit_streamed(path, specs, config, scan, chunk_rows=chunk_rows, callback=report)
    if bar is not None:
        bar.close()
    holdout = scan.test["customer_id"].astype("str").tolist() if "customer_id" in scan.test.columns else []
    meta = feature_file_meta(path) or {}
    stream = asdict(stats)
    saved = save_bundle(result, out, name=Path(out).name, data_fingerprint=scan.fingerprint,
                        data={"source": name, "version": None, "fingerprint": scan.fingerprint,
                              "as_of": meta.get("as_of"), "holdout_ids": holdout,
                              "reference": reference_snapshot(scan.fit, result.preprocessor.numeric,
                                                              result.preprocessor.categorical),
                              "streamed": stream})
    return {"bundle": str(saved), "device": result.device, "metrics": result.metrics,
            "tasks": [{"task": t.name, "label": t.label, "kind": t.kind, "role": t.role} for t in result.tasks],
            "excluded_inputs": result.excluded, "stream": stream}

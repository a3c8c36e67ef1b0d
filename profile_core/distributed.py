"""The pipeline on a Ray cluster (optional extra ``scale``: ``pip install -e ".[scale]"``).

Every step runs the single-machine code on pieces, so both paths give the same numbers:

- :func:`lake_features` — each partition of a data lake (``<lake>/<table>/part=<k>/data.parquet``, every
  row of a customer in one partition) through ``features.build_feature_table`` (the same DuckDB SQL) in a
  Ray task, all with one as-of date computed once over the whole lake (:func:`lake_as_of`); concatenated
  and sorted by customer_id the result equals the single-machine feature table.
- :func:`score_ray` — Ray Data over a feature table (Parquet): ``map_batches`` with actors that load the
  bundle once and apply ``scoring.score_chunk`` (the one scoring function) to bounded batches; the scores
  are written as Parquet files by Ray.
- :func:`global_importance_ray` — per batch the sum of |SHAP| per attribute (``explain.HeadExplainer`` and
  ``explain.to_attributes``), added up and turned into ``explain.global_importance``'s table.
- :func:`train_ray` — Ray Train ``TorchTrainer`` with N CPU workers: the net, losses, weighting, epoch loop
  and model selection of ``profile_core.train``; the net is wrapped in DistributedDataParallel
  (``ray.train.torch.prepare_model``), each worker trains on its own shard of the training rows with
  ``batch_size / N`` rows per step (the global batch stays ``batch_size``), and rank 0 writes the bundle
  with ``bundle.save_bundle`` (same format, sealed manifest).

``ray`` is imported only inside these functions: the core works without the extra, and a call without it
raises :class:`ScaleError` (``scale.no_ray``). :func:`init_ray` starts a local Ray (or joins the cluster
named by ``$RAY_ADDRESS``) unless one is running.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from profile_core.i18n import MessageError

LAKE_TABLES = ("customers", "transactions", "behaviors", "credit_records")
ID = "customer_id"


class ScaleError(MessageError):
    """A problem with the distributed engine a person can fix (messages ``scale.*``)."""


def require_ray():
    """The ``ray`` module, or :class:`ScaleError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra installs both; a bare ray without Ray Data is not enough)
    except ImportError as err:
        raise ScaleError("scale.no_ray") from err
    return ray


def init_ray(address: str | None = None, *, num_cpus: int | None = None,
             object_store_memory: int | None = None) -> bool:
    """Start (or join) Ray unless it is running; True when this call started it. ``address`` (else
    ``$RAY_ADDRESS``) joins an existing cluster; without one a local Ray with ``num_cpus`` starts."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if address:
        kwargs["address"] = address
    else:
        kwargs |= {"num_cpus": num_cpus, "object_store_memory": object_store_memory}
    ray.init(**kwargs)
    ray.data.DataContext.get_current().enable_progress_bars = False
    return True


def cluster_cpus() -> int:
    ray = require_ray()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


# --- the lake (profile_core.lake: layout, as-of date, per-partition views) ----------------------------------

def lake_partitions(lake: str | Path) -> list[int]:
    """The partition numbers of a lake (``_lake.json``; ``lake.not_a_lake`` when there is none)."""
    from profile_core.lake import read_lake_meta

    return list(range(int(read_lake_meta(lake)["partitions"])))


def lake_as_of(lake: str | Path) -> str:
    """The as-of date the single-machine path chooses for the whole lake (its last event date)."""
    from profile_core.lake import lake_as_of as as_of

    return as_of(lake)


def partition_frame(lake: str | Path, k: int, as_of: str, *, memory_limit: str = "1GB") -> pd.DataFrame:
    """The feature frame of partition ``k``: ``features.build_feature_table`` over its Parquet files (one
    DuckDB thread, ``memory_limit``) as of ``as_of``."""
    from profile_core.features import build_feature_table
    from profile_core.lake import connect, lake_views

    con = connect(memory_limit, threads=1)
    try:
        return build_feature_table(con, lake_views(con, lake, k), as_of)
    finally:
        con.close()


def lake_features(lake: str | Path, *, out: str | Path | None = None, as_of: str | None = None,
                  memory_limit: str = "1GB", cpus_per_task: float = 1.0) -> pd.DataFrame | int:
    """Features of every customer of ``lake``: one Ray task per partition (the same SQL, one as-of date for
    all, :func:`lake_as_of`). Without ``out``: the frame sorted by customer_id (``attrs["as_of"]`` set), equal
    to the single-machine feature table. With ``out``: a folder of ``part-<k>.parquet`` files written by
    DuckDB (``lake.partition_features``: same rows and values, one schema) and the row count."""
    ray = require_ray()
    init_ray()
    parts = lake_partitions(lake)
    as_of = as_of or lake_as_of(lake)
    if out is None:
        task = ray.remote(num_cpus=cpus_per_task)(partition_frame)
        frames = ray.get([task.remote(str(lake), k, as_of, memory_limit=memory_limit) for k in parts])
        frame = pd.concat(frames, ignore_index=True).sort_values(ID, kind="stable").reset_index(drop=True)
        frame.attrs["as_of"] = str(as_of)
        return frame
    from profile_core.lake import partition_features

    out = Path(out)
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.mkdir(parents=True)
    task = ray.remote(num_cpus=cpus_per_task)(partition_features)
    written = ray.get([task.remote(str(lake), k, str(out / f"part-{k:05d}.parquet"), as_of=as_of,
                                   memory_limit=memory_limit, threads=1) for k in parts])
    return int(sum(pq_rows(p) for p in written))


# --- scoring with Ray Data -----------------------------------------------------------------------------------

def _parquet_paths(data: str | Path) -> list[str]:
    path = Path(data)
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path] if path.suffix == ".parquet" else []
    files = [f for f in files if f.is_file() and not f.name.startswith(".")]
    if not files:
        raise ScaleError("scale.no_parquet", path=path)
    return [str(f) for f in files]


def _actor_cpus(actors: int) -> float:
    """CPUs each actor asks for: one when there is room, else a share that leaves Ray's read and write tasks
    a CPU (two 1-CPU actors on two CPUs stall on backpressure)."""
    return float(min(1.0, max(0.25, (cluster_cpus() - 1) / actors) if cluster_cpus() > actors else
                     max(0.25, cluster_cpus() * 0.5 / actors)))


class _ScoreBatches:
    """A Ray Data actor: loads the bundle once, scores each batch with ``scoring.score_chunk``."""

    def __init__(self, bundle_path: str) -> None:
        import torch

        torch.set_num_threads(1)  # one core per actor: scale with actors
        from profile_core.bundle import load_bundle

        self.bundle = load_bundle(bundle_path)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from profile_core.scoring import score_chunk

        return score_chunk(self.bundle, batch)


def _dataset(bundle, data: str | Path):
    """Ray Data over the feature table's Parquet files, only customer_id and the model's columns."""
    import pyarrow.parquet as pq
    import ray.data

    from profile_core.scoring import input_columns

    paths = _parquet_paths(data)
    present = set(pq.read_schema(paths[0]).names)
    wanted = input_columns(bundle)
    columns = [c for c in wanted if c in present]
    if len(columns) == int(ID in present):
        raise ScaleError("scale.no_model_columns", path=data, example=", ".join(wanted[1:4]))
    return ray.data.read_parquet(paths).select_columns(columns)


@dataclass(frozen=True)
class RayScoreStats:
    rows: int
    seconds: float
    rows_per_s: float
    files: int
    actors: int
    batch_size: int


def score_ray(bundle_path: str | Path, data: str | Path, out: str | Path, *, batch_size: int = 10_000,
              actors: int | None = None) -> RayScoreStats:
    """Score a feature table (a ``.parquet`` file or a folder of them) on Ray into the folder ``out``
    (Parquet files written by Ray; each row as ``scoring.score_chunk`` scores it). Memory per actor is
    bounded by ``batch_size``; ``actors`` (default: one per CPU but one) run at once."""
    import ray.data

    from profile_core.bundle import load_bundle

    require_ray()
    init_ray()
    started = time.perf_counter()
    bundle = load_bundle(bundle_path)
    actors = actors or max(1, cluster_cpus() - 1)
    ds = _dataset(bundle, data)
    scored = ds.map_batches(_ScoreBatches, fn_constructor_kwargs={"bundle_path": str(Path(bundle_path).resolve())},
                            batch_format="pandas", batch_size=batch_size,
                            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=_actor_cpus(actors))
    out = Path(out)
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    scored.write_parquet(str(out.resolve()))
    rows = int(sum(pq_rows(p) for p in out.glob("*.parquet")))
    seconds = time.perf_counter() - started
    return RayScoreStats(rows=rows, seconds=round(seconds, 3), rows_per_s=round(rows / seconds, 1),
                         files=len(list(out.glob("*.parquet"))), actors=actors, batch_size=batch_size)


def pq_rows(path: str | Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).metadata.num_rows


# --- global explanation over Ray Data --------------------------------------------------------------------------

def id_hash(ids: pd.Series | np.ndarray) -> np.ndarray:
    """A stable 64-bit hash per customer id (pandas' fixed-key SipHash): samples drawn by it do not depend
    on how the data is partitioned or batched."""
    return pd.util.hash_array(np.asarray(pd.Series(ids).astype("str"), dtype=object))


def sample_rows(frame: pd.DataFrame, fraction: float) -> pd.DataFrame:
    """The customers whose id hash falls in the lowest ``fraction`` of the hash range (the same customers
    whichever batch or partition holds them)."""
    if fraction >= 1:
        return frame
    return frame[id_hash(frame[ID]) < np.uint64(int(fraction * 2.0**64))]


def lowest_hash_rows(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` rows with the lowest id hash, ordered by it (a background sample independent of batching)."""
    order = np.argsort(id_hash(frame[ID]), kind="stable")[:n]
    return frame.iloc[order]


class _ImportanceBatches:
    """A Ray Data actor: per batch, Σ|SHAP| per (task, attribute) and the row count."""

    def __init__(self, bundle_path: str, background: pd.DataFrame, n_background: int, seed: int) -> None:
        import torch

        torch.set_num_threads(1)
        from profile_core.bundle import load_bundle
        from profile_core.explain import HeadExplainer

        self.bundle = load_bundle(bundle_path)
        self.explainer = HeadExplainer(self.bundle, background, n_background=n_background, seed=seed)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        return importance_sums(self.explainer, self.bundle.preprocessor, batch)


def importance_sums(explainer, preprocessor, batch: pd.DataFrame) -> pd.DataFrame:
    """task, attribute, abs_sum (Σ|SHAP| over the batch's rows, attribute level), rows."""
    from profile_core.explain import to_attributes

    expl = to_attributes(explainer.explain(batch), preprocessor)
    rows = [{"task": task, "attribute": a, "abs_sum": float(s), "rows": len(batch)}
            for task, v in expl.values.items() for a, s in v.abs().sum(axis=0).items()]
    return pd.DataFrame(rows, columns=["task", "attribute", "abs_sum", "rows"])


def importance_from_sums(sums: pd.DataFrame, explainer, preprocessor, template: pd.DataFrame) -> pd.DataFrame:
    """``explain.global_importance``'s table from added-up batch sums: the mean |SHAP| per attribute, given
    to ``global_importance`` as a one-row explanation (its mean of a non-negative row is the row)."""
    from dataclasses import replace

    from profile_core.explain import global_importance, to_attributes

    expl = to_attributes(explainer.explain(template.iloc[:1]), preprocessor)
    n = sums.groupby("task")["rows"].sum() / sums.groupby("task")["attribute"].nunique()
    totals = sums.groupby(["task", "attribute"], sort=False)["abs_sum"].sum()
    values = {}
    for task, v in expl.values.items():
        mean = totals.loc[task].reindex(v.columns).to_numpy() / n.loc[task]
        values[task] = pd.DataFrame([mean], index=v.index[:1], columns=v.columns)
    return global_importance(replace(expl, values=values))


def global_importance_ray(bundle_path: str | Path, data: str | Path, *, fraction: float = 1.0,
                          background: pd.DataFrame | None = None, n_background: int = 100, seed: int = 0,
                          batch_size: int = 1_000, actors: int | None = None) -> pd.DataFrame:
    """``explain.global_importance`` over the customers of a feature table (Parquet) whose id hash falls in
    ``fraction`` of the range (:func:`sample_rows`), explained in batches on Ray actors. ``background``:
    the SHAP background frame (default: the ``n_background`` sampled customers with the lowest id hash)."""
    import ray.data

    from profile_core.bundle import load_bundle
    from profile_core.explain import HeadExplainer

    require_ray()
    init_ray()
    bundle = load_bundle(bundle_path)
    ds = _dataset(bundle, data).map_batches(sample_rows, fn_kwargs={"fraction": fraction}, batch_format="pandas")
    if background is None:
        background = lowest_hash_rows(ds.map_batches(lowest_hash_rows, fn_kwargs={"n": n_background},
                                                     batch_format="pandas").to_pandas(), n_background)
    actors = actors or max(1, cluster_cpus() - 1)
    sums = ds.map_batches(_ImportanceBatches, batch_format="pandas", batch_size=batch_size,
                          fn_constructor_kwargs={"bundle_path": str(Path(bundle_path).resolve()),
                                                 "background": background, "n_background": n_background,
                                                 "seed": seed},
                          compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=_actor_cpus(actors)).to_pandas()
    explainer = HeadExplainer(bundle, background, n_background=n_background, seed=seed)
    return importance_from_sums(sums, explainer, bundle.preprocessor, background)


# --- training with Ray Train -----------------------------------------------------------------------------------

def _shard(rows: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank ``rank``'s training rows: every ``world``-th row (the split is already random), cut to the
    shortest shard so every worker takes the same number of steps (DDP steps in lock-step)."""
    size = len(rows) // world
    return rows[rank::world][:size]


def _train_worker(cfg: dict) -> None:
    """The loop each Ray Train worker runs (``train.fit``'s epoch loop on this worker's shard)."""
    import ray
    import ray.train
    import ray.train.torch
    import torch
    import torch.distributed as dist

    from profile_core.bundle import save_bundle
    from profile_core.nets import build_net
    from profile_core.tasks import label_stats, task_metrics
    from profile_core.train import (
        EpochReport,
        TrainResult,
        Validation,
        _Checkpoints,
        _train_epoch,
        close_epoch,
        ensemble_of,
        optimizer_groups,
        predict,
    )
    from profile_core.weighting import build_weighting

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    config, tasks, pre, split = cfg["config"], cfg["tasks"], cfg["preprocessor"], cfg["split"]
    frame = ray.get(cfg["frame"])[0]
    raw, encoded, complete = cfg["raw"], cfg["encoded"], cfg["complete"]
    torch.set_num_threads(max(1, config.num_threads))
    shard = _shard(split["train"], rank, world)
    parts = [shard, split["val"], split["test"] if rank == 0 else np.array([], dtype=int)]
    local = np.concatenate(parts)
    X = torch.as_tensor(pre.transform(frame.iloc[local]))
    del frame
    Y = {t: torch.as_tensor(y[local]) for t, y in encoded.items()}
    offsets = np.cumsum([0, *map(len, parts)])
    idx = {name: torch.arange(offsets[i], offsets[i + 1]) for i, name in enumerate(("train", "val", "test"))}
    group = dist.new_group(backend="gloo") if world > 1 else None

    def mean_over_workers(values: dict[str, float]) -> dict[str, float]:
        if world == 1:
            return values
        names = [t.name for t in tasks]
        buf = torch.tensor([values.get(t, math.nan) for t in names], dtype=torch.float64)
        dist.all_reduce(buf, group=group)
        return {t: float(v) / world for t, v in zip(names, buf.tolist(), strict=True) if not math.isnan(v)}

    def average_grad(param: torch.Tensor) -> None:
        dist.all_reduce(param.grad, group=group)
        param.grad.div_(world)

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    batch = max(1, config.batch_size // world)
    history: list[EpochReport] = []
    members, best_epochs, train_time = [], {}, 0.0
    for member in range(config.ensemble):
        model = build_net(config.arch, config.net_config(X.shape[1], tasks))
        weighting = build_weighting(config.weighting, tasks)
        if world > 1:  # the weighting's own parameters (log-variances) are outside DDP: average their gradients
            for p in weighting.parameters():
                p.register_post_accumulate_grad_hook(average_grad)
        forward = ray.train.torch.prepare_model(
            model, move_to_device=False,
            parallel_strategy_kwargs={"find_unused_parameters": len(complete) < len(tasks)})
        optimizer = torch.optim.AdamW(optimizer_groups(model, weighting, config.weight_decay), lr=config.lr,
                                      foreach=True)
        perm_gen = torch.Generator().manual_seed(config.seed + member + 1_000_003 * rank)
        checkpoints = _Checkpoints(tasks, config.selection, config.min_delta, config.patience)
        for epoch in range(1, config.max_epochs + 1):
            t0 = time.perf_counter()
            forward.train()
            order = idx["train"][torch.randperm(len(shard), generator=perm_gen)]
            train_losses, weights = _train_epoch(model, weighting, optimizer, X, Y, order, tasks, complete, batch,
                                                 forward=forward)
            train_losses = mean_over_workers(train_losses)
            weighting.end_epoch(train_losses)
            t_train = time.perf_counter() - t0
            train_time += t_train
            history.append(close_epoch(model, checkpoints, Validation(X, Y, idx["val"], raw, split["val"]), tasks,
                                       epoch=epoch, member=member, train_losses=train_losses, weights=weights,
                                       started=t0, train_seconds=t_train, samples=len(shard) * world))
            stop = torch.tensor([int(checkpoints.stalled)])
            if world > 1:  # rank 0 decides, so the workers never disagree about the last epoch
                dist.broadcast(stop, src=0, group=group)
            if stop.item():
                break
        members.append(checkpoints.restore(model, config.arch))
        if not best_epochs:
            best_epochs = checkpoints.best_epochs()
    model = members[0] if len(members) == 1 else ensemble_of(members, config.arch)
    model.eval()
    metrics: dict[str, Any] = {"workers": world, "epochs": len(history)}
    checkpoint = None
    if rank == 0:
        scores = {}
        for name in ("val", "test"):
            if len(split[name]):
                preds = predict(model, X[idx[name]], tasks)
                scores[name] = {t.name: task_metrics(t, raw[t.name][split[name]], preds[t.name]) for t in tasks}
        n_train = len(shard) * world
        result = TrainResult(
            model=model, preprocessor=pre, tasks=tasks, config=config, history=history, metrics=scores,
            split=split, label_stats=label_stats(tasks), device=f"cpu × {world} (ray)",
            train_seconds=time.perf_counter() - started,
            samples_per_second=n_train * len(history) / max(train_time, 1e-9),
            best_epoch=max(best_epochs.values(), default=0), best_epochs=best_epochs,
            feature_names=list(pre.output_names), excluded=cfg["excluded"])
        folder = Path(tempfile.mkdtemp(prefix="bundle-"))
        save_bundle(result, folder / "bundle", name=cfg["name"], data_fingerprint=cfg["fingerprint"],
                    data=cfg["data"])
        checkpoint = ray.train.Checkpoint.from_directory(str(folder / "bundle"))
        metrics["scores"] = json.dumps(scores, default=float)
    ray.train.report(metrics, checkpoint=checkpoint)


def _plan(frame: pd.DataFrame, tasks, config):
    """``train.fit``'s preparation on the driver: inputs, split, preprocessor and label scaling fitted on
    the train rows, encoded labels (the workers receive them)."""
    from dataclasses import replace

    from profile_core.features import Preprocessor
    from profile_core.tasks import EngineError, check_labels, encode_labels, labelled, with_label_stats
    from profile_core.train import excluded_inputs, feature_columns, split_indices

    if not tasks:
        raise EngineError("engine.no_tasks")
    tasks = [replace(t, weight=config.task_weights.get(t.name, t.weight)) for t in tasks]
    numeric, categorical = feature_columns(frame, tasks, None, None, config)
    split = split_indices(frame, tasks, config.seed, config.val_fraction, config.test_fraction)
    check_labels(frame, tasks, split)
    train_rows = frame.iloc[split["train"]]
    pre = Preprocessor(config.numeric_encoding, config.n_bins, config.max_categories).fit(train_rows, numeric,
                                                                                           categorical)
    tasks = with_label_stats(tasks, train_rows)
    raw = encode_labels(frame, tasks, standardize=False)
    encoded = {t.name: (raw[t.name] - t.mean) / t.std if t.kind == "regression" else raw[t.name] for t in tasks}
    for task in tasks:
        if not labelled(task, encoded[task.name][split["train"]]).any():
            raise EngineError("engine.no_labels", task=task.name, column=task.label)
    complete = frozenset(t.name for t in tasks if labelled(t, encoded[t.name][split["train"]]).all())
    excluded = {c: why for c, why in excluded_inputs(frame, tasks, config).items()
                if c not in numeric and c not in categorical}
    return tasks, split, pre, raw, encoded, complete, excluded


def training_frame(data: str | Path, *, workspace: str | Path | None = None):
    """(DataSource, feature frame) for training: a lake (features by :func:`lake_features`), a feature table
    (a ``.parquet`` file or folder of them, label columns included) or any data spec of the CLI."""
    from profile_core.ingest import label_columns
    from profile_core.pipeline import DataSource, data_fingerprint, load_source

    path = Path(str(data))
    from profile_core.lake import is_lake

    if not str(data).startswith("workspace:") and (is_lake(path) or path.suffix == ".parquet"
                                                   or (path.is_dir() and any(path.glob("part-*.parquet")))):
        frame = lake_features(path) if is_lake(path) else pd.read_parquet(_parquet_paths(path))
        if not is_lake(path):
            frame = frame.sort_values(ID, kind="stable").reset_index(drop=True)
        labels = label_columns({"customers": frame.iloc[:0]})  # the labels a file of these columns declares
        return DataSource({}, labels, name=str(data), fingerprint=data_fingerprint(frame)), frame
    from profile_core.features import build_features_from_frames

    source = load_source(data, workspace=workspace)
    return source, build_features_from_frames(source.tables)


def train_ray(data: str | Path, out: str | Path, *, workers: int = 2, tasks=None, roles=None, use_age: bool = False,
              arch: str = "shared-bottom", weighting: str = "uncertainty", epochs: int | None = None, seed: int = 42,
              settings: dict | None = None, workspace: str | Path | None = None,
              storage_path: str | Path | None = None, frame: pd.DataFrame | None = None,
              source=None) -> dict:
    """``pipeline.train_and_save`` on Ray Train with ``workers`` CPU workers (DDP over gloo): the same
    tasks, inputs, split, preprocessing and bundle format; returns the same summary (plus ``workers``).
    ``storage_path``: where Ray Train keeps the run (a folder every node can write on a cluster; default a
    temporary folder beside ``out``). ``frame``/``source``: an already built feature frame and its
    DataSource (skips reading ``data``)."""
    require_ray()
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from profile_core.bundle import ALLOWED
    from profile_core.pipeline import data_fingerprint, training_plan

    if weighting == "gradnorm":
        raise ScaleError("scale.weighting_unsupported", weighting=weighting)
    if (settings or {}).get("hybrid", "none") != "none":  # the trees are fitted on one machine's copy of the rows
        from profile_core.tasks import EngineError

        raise EngineError("engine.hybrid_ray")
    settings = {**(settings or {}), "hybrid": "none"}  # the net alone, as the manifest then says
    init_ray()
    if frame is None:
        source, frame = training_frame(data, workspace=workspace)
    specs, config = training_plan(source, frame, tasks=tasks, roles=roles, use_age=use_age, arch=arch,
                                  weighting=weighting, seed=seed, device="cpu",
                                  **({"max_epochs": epochs} if epochs else {}), **(settings or {}))
    specs, split, pre, raw, encoded, complete, excluded = _plan(frame, specs, config)
    limit = max(1, len(split["train"]) // config.batch_size)
    if not 1 <= workers <= limit:
        raise ScaleError("scale.bad_workers", workers=workers, limit=limit)
    from profile_core.monitor import reference_snapshot

    holdout = frame[ID].astype("str").iloc[split["test"]].tolist() if ID in frame.columns else []
    data_block = {"source": source.name, "version": source.version, "fingerprint": source.fingerprint,
                  "as_of": frame.attrs.get("as_of"), "holdout_ids": holdout,
                  "reference": reference_snapshot(frame.iloc[split["train"]], pre.numeric, pre.categorical)}
    import ray

    columns = [c for c in dict.fromkeys([*pre.numeric, *pre.categorical]) if c in frame.columns]
    frame_ref = ray.put(frame[columns])
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    storage = Path(storage_path) if storage_path else Path(tempfile.mkdtemp(prefix=".ray-train-", dir=out.parent))
    cfg = {"config": config, "tasks": specs, "preprocessor": pre, "split": split, "frame": [frame_ref],
           "raw": raw, "encoded": encoded, "complete": complete, "excluded": excluded, "name": out.name,
           "fingerprint": data_fingerprint(frame), "data": data_block}
    trainer = TorchTrainer(_train_worker, train_loop_config=cfg, torch_config=TorchConfig(backend="gloo"),
                           scaling_config=ScalingConfig(num_workers=workers, use_gpu=False,
                                                        resources_per_worker={"CPU": 1}),
                           run_config=RunConfig(name=f"train-{uuid.uuid4().hex[:8]}", storage_path=str(storage.resolve())))
    started = time.perf_counter()
    try:
        try:
            result = trainer.fit()
        except Exception as err:  # Ray wraps the worker's traceback: its last "...Error: ..." line says what
            lines = [x.strip() for x in str(err).splitlines() if x.strip()]
            detail = next((x for x in reversed(lines) if "Error:" in x or "Exception:" in x), lines[0] if lines else "")
            raise ScaleError("scale.train_failed", detail=detail[:300].rstrip(".")) from err
        with result.checkpoint.as_directory() as folder:  # rank 0's bundle, written by save_bundle
            tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
            tmp.mkdir(parents=True)
            for name in ALLOWED:
                shutil.copy2(Path(folder) / name, tmp / name)
            if out.exists():
                shutil.rmtree(out)
            tmp.rename(out)
    finally:
        del frame_ref
        if not storage_path:
            shutil.rmtree(storage, ignore_errors=True)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return {"bundle": str(out), "device": manifest["device"], "metrics": manifest["metrics"],
            "tasks": [{"task": t["name"], "label": t["label"], "kind": t["kind"], "role": t.get("role")}
                      for t in manifest["tasks"]],
            "excluded_inputs": manifest["excluded_inputs"], "workers": workers,
            "epochs": len(manifest["history"]), "seconds": round(time.perf_counter() - started, 2)}

"""Plain end-to-end calls shared by the CLI, the app and the benchmarks: data spec → feature frame →
model → bundle → predictions. Each step is one call into the module that owns it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from profile_core.explain_sample import EXPLAIN_SAMPLE, explanation_sample  # noqa: F401  (re-exported)

TABLE_SUFFIXES = (".parquet", ".csv", ".xlsx", ".xls")


def table_files(data: str | Path) -> list[tuple[str, Path]]:
    """The files a data spec names: every table file in a folder, or the one file given."""
    path = Path(data)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in TABLE_SUFFIXES)
    else:
        files = [path]
    if not files:
        raise FileNotFoundError(f"no table files (.parquet/.csv/.xlsx) in {path}")
    return [(p.name, p) for p in files]


def read_tables(data: str | Path, *, workspace: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Canonical tables from ``workspace:NAME`` or from files (validated like an upload)."""
    if str(data).startswith("workspace:"):
        from profile_core.store import Workspace

        ws = Workspace(workspace)
        try:
            name = str(data).split(":", 1)[1]
            tables = {t: ws.read_table(name, t) for t in ws.tables(name)}
            observation = ws.meta(name).get("observation_date")
        finally:
            ws.close()
        if observation and "customers" in tables:  # point-in-time features (features.py), for scoring too
            tables["customers"].attrs["observation_date"] = observation
        return tables
    from profile_core.ingest import prepare_tables

    tables, report = prepare_tables(table_files(data))
    if not report.ok:
        raise ValueError(report.summary("en"))
    return tables


@dataclass
class DataSource:
    """A data set as the engine needs it: its tables and what its loader declared about them.

    ``labels``: declared label column → kind ("" = infer from values); ``roles``: label → role where declared;
    ``protected``: columns marked protected; ``lineage``: how columns are tied to labels by derivation
    (:func:`label_lineage`);
    ``name``/``version``/``fingerprint`` identify the data a model is made from."""

    tables: dict[str, pd.DataFrame]
    labels: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    protected: list[str] = field(default_factory=list)
    lineage: dict[str, str] = field(default_factory=dict)
    orders: dict[str, list[str]] = field(default_factory=dict)  # band labels' class order (a mapping's bins)
    name: str = ""
    version: int | None = None
    fingerprint: str = ""


def label_lineage(mapping: dict | None, labels: Iterable[str]) -> dict[str, str]:
    """How a mapping ties columns to labels: column → ``"<-label"`` for a column derived from a label (a
    band of an amount label: never an input, whatever is trained), column → ``"->label"`` for the source of a
    derived label (``PAY_0`` behind ``PAY_0 band``: not an input while that label is trained)."""
    labels, out = set(labels), {}
    for tm in (mapping or {}).get("tables", []):
        names = {c["source"]: c.get("target") or c["source"] for c in tm.get("columns", [])}
        for d in tm.get("derived", []):
            src, name = names.get(d.get("source"), d.get("source")), d.get("name")
            if name in labels and src and src not in labels:
                out[src] = f"->{name}"
            if src in labels and name and name not in labels:
                out[name] = f"<-{src}"
    return out


def band_orders(mapping: dict | None, labels: Iterable[str]) -> dict[str, list[str]]:
    """Label → its classes in band order, for labels a mapping derives with ``bins``."""
    labels = set(labels)
    return {d["name"]: [str(x) for x in d["labels"]] for tm in (mapping or {}).get("tables", [])
            for d in tm.get("derived", []) if d.get("op") == "bins" and d.get("name") in labels and d.get("labels")}


def leaking_columns(source: DataSource, trained: Iterable[str]) -> set[str]:
    """Columns that are never inputs of a model trained on ``trained`` labels: every declared label (chosen
    or not), every column derived from a label, and the sources of the trained labels."""
    trained = set(trained)
    return set(source.labels) | {c for c, tie in source.lineage.items()
                                 if tie.startswith("<-") or tie[2:] in trained}


def load_source(data: str | Path, *, workspace: str | Path | None = None) -> DataSource:
    """``workspace:NAME`` (labels, roles and protected columns from the data set's meta) or files (validated
    like an upload; the canonical label columns they carry are its labels)."""
    if str(data).startswith("workspace:"):
        from profile_core.store import Workspace

        name = str(data).split(":", 1)[1]
        tables = read_tables(data, workspace=workspace)
        ws = Workspace(workspace)
        try:
            meta, version, fp = ws.meta(name), ws.version(name), ws.fingerprint(name)
        finally:
            ws.close()
        labels = dict(meta.get("labels") or {})
        return DataSource(tables, labels, dict(meta.get("label_roles") or {}), list(meta.get("protected") or []),
                          label_lineage(meta.get("mapping"), labels), band_orders(meta.get("mapping"), labels),
                          name, version, fp)
    from profile_core.ingest import label_columns
    from profile_core.store import fingerprint_tables

    tables = read_tables(data, workspace=workspace)
    return DataSource(tables, label_columns(tables), name=str(data), fingerprint=fingerprint_tables(tables))


def feature_frame(data: str | Path, *, workspace: str | Path | None = None) -> pd.DataFrame:
    from profile_core.features import build_features_from_frames

    if (loaded := feature_source(data)) is not None:  # a feature file or a lake: never the event tables in pandas
        return loaded[1]
    return build_features_from_frames(read_tables(data, workspace=workspace))


def feature_source(data: str | Path | DataSource) -> tuple[DataSource, pd.DataFrame] | None:
    """A feature table written by ``features`` (a Parquet file with profile_core's feature metadata) or a
    lake (``profile_core.lake``: features built by DuckDB into a scratch file first) as (source, frame);
    None for anything else. The event tables are never read into pandas: the frame is the feature table
    (~0.6 kB per customer), its labels the canonical label columns it carries."""
    import tempfile

    from profile_core.features import feature_file_meta, read_feature_file
    from profile_core.ingest import label_columns
    from profile_core.lake import is_lake, lake_features

    if isinstance(data, DataSource) or str(data).startswith("workspace:"):
        return None
    if is_lake(data):
        with tempfile.TemporaryDirectory(prefix="features-") as tmp:
            lake_features(data, Path(tmp) / "features.parquet")
            frame = read_feature_file(Path(tmp) / "features.parquet")
    elif feature_file_meta(data) is not None:
        frame = read_feature_file(data)
    else:
        return None
    source = DataSource({}, label_columns({"customers": frame}), name=str(data), fingerprint=data_fingerprint(frame))
    return source, frame


def data_fingerprint(frame: pd.DataFrame) -> str:
    """Stable content hash of a feature frame (recorded in bundles, keys caches)."""
    import hashlib

    h = hashlib.sha256()
    h.update(",".join(map(str, frame.columns)).encode())
    h.update(pd.util.hash_pandas_object(frame, index=False).values.tobytes())
    return h.hexdigest()[:16]


def training_plan(source: DataSource, frame: pd.DataFrame, *, tasks: Iterable[str] | None = None,
                  roles: dict[str, str] | None = None, use_age: bool = False, **config: object):
    """(tasks, TrainConfig) for training on ``source``: one task per declared label (or the chosen ones) with
    its role; every other declared label, every column tied to a trained label by derivation and the
    protected attributes (the defaults plus the ones the data set marks) excluded from the inputs."""
    from profile_core.tasks import declared_tasks
    from profile_core.train import TrainConfig

    specs = declared_tasks(frame, source.labels, roles={**source.roles, **(roles or {})}, chosen=tasks,
                           orders=source.orders)
    trained = {t.label for t in specs}
    return specs, TrainConfig(use_age=use_age, exclude_inputs=tuple(sorted(leaking_columns(source, trained) - trained)),
                              protected=tuple(dict.fromkeys([*TrainConfig().protected, *source.protected])),
                              **config)


def training_snapshot(result, frame: pd.DataFrame) -> dict:
    """The training rows' input distributions (``monitor.reference_snapshot``): the drift reference."""
    from profile_core.monitor import reference_snapshot

    return reference_snapshot(frame.iloc[result.split["train"]], result.preprocessor.numeric,
                              result.preprocessor.categorical)


def train_and_save(
    data: str | Path | DataSource,
    out: str | Path,
    *,
    tasks: Iterable[str] | None = None,
    roles: dict[str, str] | None = None,
    use_age: bool = False,
    arch: str = "shared-bottom",
    weighting: str = "uncertainty",
    epochs: int | None = None,
    seed: int = 42,
    device: str = "auto",
    baselines: bool = False,
    workspace: str | Path | None = None,
    progress: bool = False,
    callback: Callable | None = None,
    tune: float | None = None,
    settings: dict | None = None,
) -> dict:
    """Train the labels ``data`` declares (or the ``tasks`` chosen, ``NAME`` or ``NAME:kind``) and write a
    bundle to ``out``; returns a JSON-able summary. Declared labels not chosen, columns derived from labels
    and protected attributes are never inputs; the bundle records them and the data it was made from.
    ``tune``: first search trainer settings for that many seconds on the validation split
    (``profile_core.tune``); the chosen configuration, with how it was found, is the manifest's config.
    ``settings``: further ``TrainConfig`` fields (e.g. ``{"selection": "total"}`` for one net, not one per head)."""
    from profile_core.baselines import comparison_table, run_baselines
    from profile_core.bundle import save_bundle
    from profile_core.features import build_features_from_frames
    from profile_core.train import fit

    loaded = feature_source(data)  # a feature file or a lake: the feature table only, never the event tables
    if loaded is not None:
        source, frame = loaded
    else:
        source = data if isinstance(data, DataSource) else load_source(data, workspace=workspace)
        frame = build_features_from_frames(source.tables)
    tasks, config = training_plan(source, frame, tasks=tasks, roles=roles, use_age=use_age, arch=arch,
                                  weighting=weighting, seed=seed, device=device,
                                  **({"max_epochs": epochs} if epochs else {}), **(settings or {}))
    if tune:
        from profile_core.tune import tune as search

        config = search(frame, tasks, tune, base=config).config
    bar = _progress_bar(config.max_epochs) if progress else None

    def report(epoch_report) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(val_loss=f"{epoch_report.val_loss:.4f}")
        if callback is not None:
            callback(epoch_report)

    result = fit(frame, tasks, config, callback=report)
    if bar is not None:
        bar.close()
    holdout = frame["customer_id"].astype("str").iloc[result.split["test"]].tolist() \
        if "customer_id" in frame.columns else []
    path = save_bundle(result, out, name=Path(out).name, data_fingerprint=data_fingerprint(frame),
                       data={"source": source.name, "version": source.version, "fingerprint": source.fingerprint,
                             "as_of": frame.attrs.get("as_of"), "holdout_ids": holdout,
                             "reference": training_snapshot(result, frame)})
    summary = {"bundle": str(path), "device": result.device, "metrics": result.metrics,
               "tasks": [{"task": t.name, "label": t.label, "kind": t.kind, "role": t.role} for t in result.tasks],
               "excluded_inputs": result.excluded}
    if baselines:
        table = comparison_table({"MTL": result.metrics["test"],
                                  **run_baselines(frame, tasks, config, result.split)})
        summary["comparison"] = table.to_dict(orient="records")
    return summary


def _progress_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, desc="epochs", unit="epoch")


def scored_frame(bundle, frame: pd.DataFrame, *, chunk_size: int = 50_000) -> pd.DataFrame:
    """Every task's prediction per customer, plus scorecard points and the PD grade when there is a PD head
    (``scoring.score_chunk`` per chunk: the same numbers as the API and batch scoring)."""
    from profile_core.scoring import score_chunk

    parts = [score_chunk(bundle, frame.iloc[i:i + chunk_size]) for i in range(0, len(frame), chunk_size)]
    return pd.concat(parts, ignore_index=True) if parts else score_chunk(bundle, frame)


def score(bundle_path: str | Path, data: str | Path, out: str | Path, *,
          workspace: str | Path | None = None, chunk_size: int = 50_000, progress: bool = False) -> int:
    """Score ``data`` into ``out``; one flat feature-table file (.parquet/.csv with every model column) is
    streamed chunk by chunk in bounded memory (``scoring.score_file``), anything else is built in memory."""
    from profile_core.bundle import load_bundle, require_inputs
    from profile_core.exports import safe_frame
    from profile_core.scoring import is_feature_table, score_file

    bundle = load_bundle(bundle_path)
    if is_feature_table(bundle, data):
        return score_file(bundle, data, out, chunk_rows=chunk_size, progress=progress).rows
    frame = feature_frame(data, workspace=workspace)
    require_inputs(bundle, frame)
    scores = scored_frame(bundle, frame, chunk_size=chunk_size)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        scores.to_parquet(out, index=False)
    else:
        safe_frame(scores).to_csv(out, index=False, encoding="utf-8-sig")  # formula-safe, like exports
    return len(scores)


def explain_cli(bundle_path: str | Path, data: str | Path, *, customer: str | None, global_out: str | None,
                workspace: str | Path | None = None, lang: str = "zh", role: str = "analyst",
                sample: int | None = EXPLAIN_SAMPLE, features: str | Path | None = None) -> int:
    """Print one customer's card and reason codes, and/or write per-task global importance.

    ``data`` may be a lake (``profile_core.lake``): a card then reads the customer's rows by key and its row of
    the feature table ``features`` (never the portfolio); a global explanation reads ``features`` (or builds
    the lake's). A feature file as ``data`` is read as it is. Global importance covers ``sample`` customers
    at most (:func:`explanation_sample`); how they were chosen is printed and written beside ``global_out``
    (``<global_out>.sample.json``). A global explanation alone of a feature file (or of a lake) streams the
    file (``explain_sample.stream_explanation_sample``): the same customers and numbers in bounded memory."""
    import tempfile

    from profile_core.bundle import load_bundle, require_inputs
    from profile_core.explain import HeadExplainer
    from profile_core.explain_sample import file_input_check, stream_explanation_sample
    from profile_core.features import build_features_from_frames, feature_file_meta
    from profile_core.lake import is_lake, lake_card, lake_features
    from profile_core.privacy import Policy
    from profile_core.profile import CardContext

    bundle = load_bundle(bundle_path)
    lake = is_lake(data)
    if customer and lake:
        print(format_card(lake_card(data, features, bundle, customer, policy=Policy(role), lang=lang)))
        customer = None
        if not global_out:
            return 0
    path = features if lake and features else data
    if global_out and not customer and ((lake and not features) or feature_file_meta(path) is not None):
        with tempfile.TemporaryDirectory(prefix="features-") as tmp:
            if lake and not features:  # the lake's feature table into a scratch file first
                path = Path(tmp) / "features.parquet"
                lake_features(data, path)
            file_input_check(bundle, path)
            drawn = stream_explanation_sample(bundle, path, sample)
            _write_global(HeadExplainer(bundle, drawn.background), drawn.rows, drawn.info, global_out)
        return 0
    tables = None
    loaded = feature_source(features if lake and features else data)
    if loaded is not None:
        frame = loaded[1]
    else:
        tables = read_tables(data, workspace=workspace)
        frame = build_features_from_frames(tables)
    require_inputs(bundle, frame)
    explainer = HeadExplainer(bundle, frame)
    if global_out:
        _write_global(explainer, *explanation_sample(bundle, frame, sample), global_out)
    if customer:
        if tables is None:  # a feature file: the card without event tables
            tables = {"customers": frame}
        context = CardContext(tables, frame, bundle.predict(frame), explainer=explainer)
        card = context.card(customer, policy=Policy(role), lang=lang)
        print(format_card(card))
    return 0


def _write_global(explainer, rows: pd.DataFrame, how: dict, global_out: str | Path) -> None:
    """Per-task global importance of ``rows`` to ``global_out`` (CSV) and how they were chosen beside it."""
    import json

    from profile_core.explain import global_importance, to_attributes
    from profile_core.exports import safe_frame

    table = global_importance(to_attributes(explainer.explain(rows), explainer.preprocessor, rows))
    Path(global_out).parent.mkdir(parents=True, exist_ok=True)
    safe_frame(table).to_csv(global_out, index=False, encoding="utf-8-sig")
    Path(f"{global_out}.sample.json").write_text(json.dumps(how, ensure_ascii=False, indent=2), encoding="utf-8")
    print(f"customers explained: {how['sample']} of {how['population']} ({how['method']})")
    print(table.head(15).to_string(index=False))


def format_card(card) -> str:
    """A plain-text rendering of a ProfileCard for the terminal."""
    from profile_core.i18n import t

    lang = card.lang
    o = card.outputs
    lines = [f"== {card.customer_id}  " + "  ".join(f"{v}" for v in card.identity.values() if v not in (None, "")),
             f"{t('card.points', lang)}: {o.points:.0f}   PD: {o.pd:.2%}   {t('card.grade', lang)}: {o.grade}"
             if o.pd is not None else "",
             "  ".join(tag.text(lang) for tag in card.tags)]
    for task, rc in card.reasons.items():
        lines.append(f"-- {task}")
        lines += [f"  ↑ {r.sentence}" for r in rc.up]
        lines += [f"  ↓ {r.sentence}" for r in rc.down]
    lines += [f"! {w.text}" for w in card.warnings]
    lines.append(card.notice)
    return "\n".join(line for line in lines if line)

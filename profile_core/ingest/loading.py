"""Loading: map, coerce and validate every file, then store atomically.

Flow: :func:`.reading.read_sheets` (bytes → raw frames) → ``prepare_tables`` (which table, rename aliases
or apply a mapping, coerce types, row checks, cross-table checks → canonical frames + ValidationReport) →
``load_into_workspace`` (stores only when the report has no errors; a failed load leaves the workspace
untouched).

Row numbers always refer to the user's file: raw frames are indexed by file row, header = row 1, the
first data row = row 2 (blank lines count, as in a text editor or spreadsheet; Parquet has no rows on
screen, so it follows the same convention). Returned canonical frames have a plain RangeIndex.
An Excel workbook with several non-empty sheets gives one table per sheet (recognised by sheet name,
then headers), named ``book.xlsx [sheet]`` in messages; files of the same table are concatenated.

Canonical dtypes: id/text/category → ``str``; float → float64; int and flag (0/1) → nullable Int64;
datetime/date → datetime64[us] (dates at midnight). Tables carry only the columns the file had, canonical
columns first in schema order, then unknown extra columns (numeric-looking → float64, else ``str``).

The FLAT form: a file with a customer ID that is not an event table (no time column) is read as the
``customers`` table; it may also carry the label columns (credit_score, default_flag, risk_level) and
customer-level credit columns (dpd, credit_limit, balance, loan_count, inquiries) under their canonical
names, plus any extra columns. Uploads without any event table give ``{"customers": frame}`` and
dataset kind ``"flat"``; with event tables the kind is ``"tables"`` (labels then come from
credit_records, or from label columns on customers if present).

MAPPINGS (:mod:`.mapping`): ``prepare_tables`` / ``load_into_workspace`` take an optional
``mapping`` (and a ``store`` of saved mappings, matched by header signature). A file a mapping covers is
mapped first (``mapping.apply_mapping``: canonical names, dates, decimal commas, codes, derived columns),
then validated here like any other file but with exact names only. Link tables (``account_links``) are
read first; events keyed by ``account_id`` are resolved to customers through them
(``mapping.resolve_accounts``; unlinked rows dropped and counted). Files no mapping covers load as
before. ``LoadResult.labels`` lists the label columns with their kinds (also stored in the dataset meta).

LIMITS (:class:`Limits`, from the environment unless given): file size, rows, columns and cells per file,
unpacked size of gzip and xlsx content, the compression ratio of xlsx members (zip bombs are refused before
openpyxl reads anything) and the member count. Each breach is one clear message naming the file and the limit.
Any other failure while reading or checking a file becomes a message naming the file, never a traceback;
``load_into_workspace(..., policy=...)`` refuses callers whose role may not load data (``auth.require``).
"""


from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import pandera.pandas as pa

from ..schema import (
    ACCOUNT_LINKS,
    CUSTOMERS,
    EVENT_TABLES,
    LABEL_TASK_KINDS,
    LABELS,
    TABLES,
    alias_map,
    normalize_header,
)
from ..store import Workspace, check_name
from . import parsers as parsing
from .mapping import (
    ATTACH,
    LinkSpec,
    Mapping,
    MappingStore,
    TableMapping,
    apply_mapping,
    as_store,
    resolve_accounts,
)
from .parsers import coerce, extra_values
from .reading import BadRows, Limits, read_sheets, resolve_table
from .report import COLUMNS, FLAT_CUSTOMERS, IngestError, ValidationReport, issue

if TYPE_CHECKING:
    from ..privacy import Policy

_TABLE_ORDER = ("customers", *EVENT_TABLES)
_EXPECTED = {"float": "number", "int": "integer", "datetime": "datetime", "date": "date", "flag": "flag"}


@dataclass
class LoadResult:
    """What a load did. ``labels``: every label column of the loaded data → kind (regression / binary /
    multiclass): the canonical ones present (credit_score, default_flag, risk_level) plus the label columns
    a mapping marked on the customers table; the same dict is stored as ``Workspace.meta(dataset)["labels"]``.
    ``mapping``: the mapping applied (given, or re-applied from saved mappings), else None."""

    report: ValidationReport
    tables: dict[str, pd.DataFrame]
    version: int | None
    dataset: str
    kind: str = "tables"
    fingerprint: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    mapping: Mapping | None = None
    source: str = ""



def _conform(label: str, table_name: str, raw: pd.DataFrame, report: ValidationReport, *,
             exact: bool = False, bad_rows: BadRows = "refuse") -> pd.DataFrame:
    """Rename aliases, coerce types and run the row checks of one file; issues go to ``report``.

    Rows missing a required value (an event's customer, time or amount; empty or unreadable) are never
    loaded silently: ``bad_rows="refuse"`` makes each missing value an error naming its first row and the
    count; ``"skip"`` leaves those rows out and counts them in one warning.

    ``exact``: the frame comes from a mapping — only exact canonical names are fields, every other column
    is an extra the user chose to keep (no alias guessing, no "unrecognised columns" warning)."""
    table = {"customers": FLAT_CUSTOMERS, "account_links": ACCOUNT_LINKS}.get(table_name) or TABLES[table_name]
    amap = alias_map(table)
    names = {c.name for c in table.columns}
    rename: dict[str, str] = {}
    extras: list[str] = []
    for h in raw.columns:
        canon = (h if h in names else None) if exact else amap.get(normalize_header(h))
        if canon is None:
            extras.append(h)
        elif canon in rename.values():
            report.issues.append(issue("duplicate_column", label, column=canon, header=h, severity="warning"))
        else:
            rename[h] = canon
    present = set(rename.values())
    for name in table.required:
        if name not in present:
            report.issues.append(issue("missing_column", label, column=name))
    base = CUSTOMERS if table_name == "customers" else table
    optional = [c.name for c in base.columns if not (c.required or c.personal or c.name in present)]
    if optional:
        report.issues.append(issue("missing_optional", label, columns=optional, severity="warning"))
    if extras and not exact:
        report.issues.append(issue("extra_columns", label, columns=extras, severity="warning"))

    out = pd.DataFrame(index=raw.index)
    order = [c.name for c in table.columns]
    for h, name in sorted(rename.items(), key=lambda kv: order.index(kv[1])):
        col = table.column(name)
        converted, bad = coerce(raw[h], col)
        out[name] = converted
        if bad.any():
            key = "unknown_value" if col.values else ("bad_value" if col.required else "bad_value_optional")
            first = bad[bad].index[0]
            report.issues.append(issue(key, label, row=int(first), column=name, count=int(bad.sum()),
                                        value=raw.at[first, h], expected=_EXPECTED.get(col.kind, "number"),
                                        severity="error" if key == "bad_value" else "warning"))
    for h in extras:
        out[h] = extra_values(raw[h])
    out = _required_values(label, table, out, raw, rename, report, bad_rows)
    _row_checks(label, table_name, out[list(present)], report)
    return out


def _required_values(label: str, table, out: pd.DataFrame, raw: pd.DataFrame, rename: dict[str, str],
                     report: ValidationReport, bad_rows: BadRows) -> pd.DataFrame:
    required = [c for c in table.required if c in out]
    if not required or out.empty:
        return out
    missing = out[required].isna()
    if bad_rows == "skip":
        gone = missing.any(axis=1)
        if gone.any():
            first = gone[gone].index[0]
            report.issues.append(issue("rows_missing_required", label, row=int(first), count=int(gone.sum()),
                                       columns=[c for c in required if missing[c].any()], severity="warning"))
            for i in report.issues:  # the unreadable values of these rows went with them
                if i.file == label and i.column in required and i.problem in ("ingest.bad_value",
                                                                              "mapping.bad_value", "ingest.null_id"):
                    i.severity = "warning"
            out = out.loc[~gone]
        return out
    source = {v: k for k, v in rename.items()}
    for c in required:
        if c == "customer_id" and table.name == "customers":
            continue  # a customers file's missing ID is reported by the row checks (null_id)
        empty = missing[c] & (raw[source[c]].isna() if c in source and source[c] in raw else missing[c])
        if empty.any():
            first = empty[empty].index[0]
            report.issues.append(issue("missing_required_value", label, row=int(first), column=c,
                                       count=int(empty.sum())))
    return out


def _row_checks(label: str, table_name: str, df: pd.DataFrame, report: ValidationReport) -> None:
    """Declarative row checks (pandera) on the canonical columns of one file: null/duplicate IDs block;
    odd ages, negative amounts and future dates warn."""
    future = pd.Timestamp.now() + pd.Timedelta(days=1)
    checks: dict[str, pa.Column] = {}
    if "customer_id" in df:
        checks["customer_id"] = pa.Column(nullable=False, unique=table_name == "customers",
                                          report_duplicates="exclude_first")
    if "age" in df:
        checks["age"] = pa.Column(nullable=True, checks=pa.Check(lambda s: (s >= 0) & (s <= 120), name="age_range"))
    if "amount" in df:
        checks["amount"] = pa.Column(nullable=True, checks=pa.Check(lambda s: s >= 0, name="negative_amount"))
    for c in df.columns:
        if c in COLUMNS and COLUMNS[c].kind in ("datetime", "date") and pd.api.types.is_datetime64_any_dtype(df[c]):
            checks[c] = pa.Column(nullable=True, checks=pa.Check(lambda s: s <= future, name="future_date"))
    if not checks:
        return
    try:
        # pandera reports positions correctly only on a RangeIndex, so validate a reset copy
        pa.DataFrameSchema(checks).validate(df[list(checks)].reset_index(drop=True), lazy=True)
        return
    except pa.errors.SchemaErrors as e:
        failures = e.failure_cases
    keys = {"not_nullable": ("null_id", "error"), "field_uniqueness": ("duplicate_id", "error"),
            "age_range": ("age_range", "warning"), "negative_amount": ("negative_amount", "warning"),
            "future_date": ("future_date", "warning")}
    rows = df.index.to_numpy()
    for (column, check), group in failures.groupby(["column", "check"], sort=False):
        if check != "not_nullable":  # a missing ID is reported once, as null_id, not as a duplicate
            group = group[group["failure_case"].notna()]
        if check not in keys or group.empty:
            continue
        key, severity = keys[check]
        first = group.loc[group["index"].idxmin()]
        report.issues.append(issue(key, label, row=int(rows[int(first["index"])]), column=str(column),
                                    count=len(group), value=first["failure_case"], severity=severity))


# ---- all files ------------------------------------------------------------------------------------
def dataset_kind(tables: dict[str, pd.DataFrame]) -> str:
    """``"tables"`` when any event table is present, else ``"flat"`` (one row per customer)."""
    return "tables" if any(t in tables for t in EVENT_TABLES) else "flat"


def prepare_tables(files: list[tuple[str, bytes | str | Path]], mapping: Mapping | None = None, *,
                   store: MappingStore | str | Path | None = None,
                   limits: Limits | None = None,
                   bad_rows: BadRows | None = None) -> tuple[dict[str, pd.DataFrame], ValidationReport]:
    """Read, recognise, map, coerce and validate every file; collects every issue before stopping.

    ``mapping`` (see :mod:`profile_core.mapping`): files it covers (same header signature, else same file
    name) are mapped with it before validation; ``store``: files with the header of a saved mapping get that
    one. Other files load as before (aliases). Returns canonical frames per table (files of the same table
    are concatenated) and the report. The frames are only fit to store when ``report.ok``."""
    prepared = _prepare(files, mapping, store, limits, bad_rows)
    return prepared.tables, prepared.report


@dataclass
class _Prepared:
    tables: dict[str, pd.DataFrame]
    report: ValidationReport
    labels: dict[str, str]
    mapping: Mapping | None


def _prepare(files: list[tuple[str, bytes | str | Path]], mapping: Mapping | None,
             store: MappingStore | str | Path | None, limits: Limits | None = None,
             bad_rows: BadRows | None = None) -> _Prepared:
    """:func:`_prepare_files` with a safety net: an unexpected failure anywhere becomes one error naming the
    files (and nothing to store), never a traceback."""
    try:
        return _prepare_files(files, mapping, store, limits or Limits.from_env(), bad_rows)
    except Exception as e:  # noqa: BLE001
        report = ValidationReport()
        names = ", ".join(str(n) for n, _ in files) if isinstance(files, list | tuple) else ""
        report.issues.append(issue("unexpected", names, detail=type(e).__name__))
        return _Prepared({}, report, {}, None)


def _prepare_files(files: list[tuple[str, bytes | str | Path]], mapping: Mapping | None,
                   store: MappingStore | str | Path | None, limits: Limits,
                   bad_rows: BadRows | None = None) -> _Prepared:
    report = ValidationReport()
    bad_rows = bad_rows or (mapping.bad_rows if mapping is not None else None) or "refuse"
    if not files:
        report.issues.append(issue("no_files", ""))
        return _Prepared({}, report, {}, None)
    store = as_store(store)
    if mapping is not None:  # a mapping that cannot load as written stops the load, naming the problem
        report.issues.extend(i for i in mapping.problems() if i.severity == "error")
    matched: set[int] = set()  # ids of the given mapping's tables some file matched
    settings = mapping  # where the data-set settings (currency, observation date) come from
    used: list = []  # TableMappings applied, for the LoadResult
    link_spec = mapping.link if mapping is not None else None
    staged: list[tuple[str, str, pd.DataFrame, bool]] = []  # (label, table, frame, mapped)
    unresolved = 0
    for name, data in files:
        try:
            sheets = read_sheets(name, data, limits, bad_rows=bad_rows)
        except IngestError as e:
            report.issues.append(e.issue)
            unresolved += 1
            continue
        for label, guess_name, raw in sheets:
            if skipped := raw.attrs.get("skipped_rows"):
                report.issues.append(issue("rows_skipped", label, row=skipped[0][0], count=len(skipped),
                                           severity="warning"))
            headers = [str(h) for h in raw.columns]
            tm = mapping.match(label, headers) if mapping is not None else None
            if tm is not None:
                matched.add(id(tm))
            if tm is None and store is not None:
                found = store.find(headers)
                if found is not None:
                    tm, saved = found
                    link_spec = link_spec or saved.link
                    settings = settings or saved
            if tm is not None:
                if tm.table is None:
                    report.issues.append(issue("no_table", label, area="mapping"))
                    unresolved += 1
                    continue
                used.append(tm.model_copy(update={"file": label}))
                staged.append((label, tm.table, apply_mapping(raw, tm, report, file=label), True))
                continue
            table = resolve_table(headers, guess_name)
            if table is None:
                report.issues.append(issue("table_unknown", label))
                unresolved += 1
                continue
            staged.append((label, table, raw, False))
    for tm in mapping.tables if mapping is not None else []:
        if id(tm) not in matched:
            report.issues.append(issue("unmatched", tm.file or tm.header_signature, area="mapping",
                                       value=", ".join(tm.headers or [c.source for c in tm.columns])[:200]))
    link_frames = [_conform(label, "account_links", frame, report, exact=mapped, bad_rows=bad_rows)
                   for label, tb, frame, mapped in staged if tb == "account_links"]
    links = pd.concat(link_frames) if link_frames else None
    staged = _attach(staged, {tm.file: tm for tm in used}, links, link_spec or LinkSpec(), report)
    parts: list[tuple[str, str, pd.DataFrame]] = []  # (label, table, frame indexed by file row)
    for label, tb, frame, mapped in staged:
        if tb in ("account_links", ATTACH):
            continue
        if mapped and tb in EVENT_TABLES and "account_id" in frame and "customer_id" not in frame:
            if links is None:
                report.issues.append(issue("no_link_table", label, area="mapping"))
                unresolved += 1
                continue
            frame = resolve_accounts(frame, links, link_spec or LinkSpec(), label, report)
        parts.append((label, tb, _conform(label, tb, frame, report, exact=mapped, bad_rows=bad_rows)))
    applied = None
    if used:
        keep = {k: getattr(settings, k) for k in ("currency", "observation_date", "bad_rows")} if settings else {}
        applied = Mapping(tables=used, link=link_spec or LinkSpec(), **keep)
    custom = {k: v for k, v in applied.labels().items() if v} if applied is not None else {}
    _cross_checks(parts, report, unresolved, custom)
    tables = {}
    for name in _TABLE_ORDER:
        frames = [df for _, tb, df in parts if tb == name]
        if frames:
            tables[name] = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)
    return _Prepared(tables, report, label_columns(tables, custom), applied)


def _attach(staged: list[tuple[str, str, pd.DataFrame, bool]], mapped: dict[str, TableMapping],
            links: pd.DataFrame | None, link: LinkSpec,
            report: ValidationReport) -> list[tuple[str, str, pd.DataFrame, bool]]:
    """Columns of ``attach`` files joined onto the customers files (see :class:`~.mapping.JoinSpec`): by a
    lookup key, or by account through the link table; each customer gets at most one row (counted)."""
    out = list(staged)
    for label, tb, frame, _ in staged:
        tm = mapped.get(label)
        if tb != ATTACH or tm is None or tm.join is None:
            continue
        spec = tm.join
        if spec.key not in frame:
            report.issues.append(issue("join_no_column", label, column=spec.key, area="mapping", side=label))
            continue
        right = frame.copy()
        if spec.via == "account":
            if links is None:
                report.issues.append(issue("no_link_table", label, area="mapping"))
                continue
            right = resolve_accounts(right.rename(columns={spec.key: "account_id"}), links, link, label, report)
            rkey, on = "customer_id", "customer_id"
            right = right.drop(columns=["account_id"])
        elif spec.via == "link":  # the key is a link-table row ID (e.g. disp_id): its holder is the customer
            link_key = spec.link_key or spec.key
            if links is None or link_key not in links:
                report.issues.append(issue("join_no_column", label, column=link_key, area="mapping",
                                           side="account_links"))
                continue
            ids = pd.Series(links["customer_id"].to_numpy(), index=parsing.as_text(links[link_key]).to_numpy())
            ids = ids[~ids.index.duplicated()]
            right = right.assign(customer_id=parsing.as_text(right[spec.key]).map(ids)).drop(columns=[spec.key])
            rkey, on = "customer_id", "customer_id"
        else:
            rkey, on = spec.key, spec.on or spec.key
        right[rkey] = parsing.as_text(right[rkey])
        dup = right[rkey].duplicated(keep=spec.several) & right[rkey].notna()
        if dup.any():
            report.issues.append(issue("join_several", label, count=int(right.loc[dup, rkey].nunique()),
                                       value=right.loc[dup, rkey].iloc[0], several=spec.several, area="mapping",
                                       severity="warning"))
            right = right[~dup]
        right = right.rename(columns={c: f"{spec.prefix}{c}" for c in right.columns if c != rkey})
        matched_keys: set[str] = set()
        for j, (clabel, ctb, cframe, cmapped) in enumerate(out):
            if ctb != "customers":
                continue
            if on not in cframe:
                report.issues.append(issue("join_no_column", label, column=on, area="mapping", side=clabel))
                continue
            keys = parsing.as_text(cframe[on])
            matched_keys.update(keys.dropna())
            add = right.set_index(rkey)
            add = add[[c for c in add.columns if c not in cframe]]
            joined = add.reindex(keys.to_numpy())
            joined.index = cframe.index
            out[j] = (clabel, ctb, pd.concat([cframe, joined], axis=1), cmapped)
        unmatched = right[~right[rkey].isin(matched_keys)]
        if len(unmatched):
            report.issues.append(issue("join_unmatched", label, count=len(unmatched), value=unmatched[rkey].iloc[0],
                                       area="mapping", severity="warning"))
    return out


def label_columns(tables: dict[str, pd.DataFrame], custom: dict[str, str] | None = None) -> dict[str, str]:
    """Label column → kind: canonical labels present on customers or credit_records, plus ``custom`` labels
    (from a mapping) present on customers."""
    kinds = LABEL_TASK_KINDS
    out: dict[str, str] = {}
    for name in ("customers", "credit_records"):
        df = tables.get(name)
        if df is None:
            continue
        out.update({c: k for c, k in kinds.items() if c in df})
        if name == "customers":
            out.update({c: k for c, k in (custom or {}).items() if c in df and c not in out})
    canonical = {c: out[c] for c in kinds if c in out}  # the risk labels first, then the marketing ones
    return {**canonical, **{c: k for c, k in out.items() if c not in canonical}}


def _cross_checks(parts: list[tuple[str, str, pd.DataFrame]], report: ValidationReport, unresolved: int,
                  custom_labels: dict[str, str] | None = None) -> None:
    customers = [(label, df) for label, tb, df in parts if tb == "customers" and "customer_id" in df]
    events = [(label, tb, df) for label, tb, df in parts if tb in EVENT_TABLES]
    if events and not customers:
        if not unresolved and not any(tb == "customers" for _, tb, _ in parts):
            report.issues.append(issue("no_customers", events[0][0]))
        return
    seen: set[str] = set()
    for label, df in customers:  # the same customer in two customers files
        ids = df["customer_id"].dropna()
        dup = ids[ids.isin(seen)]
        if len(dup):
            report.issues.append(issue("duplicate_id", label, row=int(dup.index[0]), column="customer_id",
                                        count=len(dup), value=dup.iloc[0]))
        seen.update(ids)
    for label, _, df in events:
        if "customer_id" not in df:
            continue
        ids = df["customer_id"].dropna()
        orphans = ids[~ids.isin(seen)]
        if len(orphans):
            report.issues.append(issue("orphan_events", label, row=int(orphans.index[0]), column="customer_id",
                                        count=len(orphans), value=orphans.iloc[0]))
    _label_checks(customers, events, seen, report, custom_labels or {})


def _label_checks(customers: list[tuple[str, pd.DataFrame]], events: list[tuple[str, str, pd.DataFrame]],
                  ids: set[str], report: ValidationReport, custom: dict[str, str]) -> None:
    found = False
    for label, df in customers:  # labels carried by the customers table (the flat form)
        for name in [*LABELS, *(c for c in custom if c not in LABELS)]:
            if name in df:
                found = True
                if missing := int(df[name].isna().sum()):
                    report.issues.append(issue("labels_missing", label, column=name, count=missing,
                                                severity="warning"))
    for label, tb, df in events:  # labels from credit records: customers with no value at all
        if tb != "credit_records" or "customer_id" not in df:
            continue
        for name in LABELS:
            if name in df:
                found = True
                missing = len(ids - set(df.loc[df[name].notna(), "customer_id"]))
                if missing:
                    report.issues.append(issue("labels_missing", label, column=name, count=missing,
                                                severity="warning"))
    if customers and not found:
        report.issues.append(issue("no_labels", customers[0][0], severity="warning"))


def load_into_workspace(files: list[tuple[str, bytes | str | Path]], workspace: Workspace,
                        dataset: str = "main", mapping: Mapping | None = None, *, source: str | None = None,
                        store: MappingStore | str | Path | None = None, limits: Limits | None = None,
                        policy: Policy | None = None, bad_rows: BadRows | None = None) -> LoadResult:
    """prepare_tables (with ``mapping`` / saved mappings in ``store`` applied before validation), then —
    only when the report has no errors — replace ``dataset`` atomically. The dataset's meta records the
    label columns with their kinds and the mapping applied.

    ``policy``: the person loading; a role without the ``load_data`` permission gets ``auth.Forbidden`` before
    anything is read (callers acting for a person pass it; the CLI and first-start demo load act for the
    operator). Callers that must not hold a workspace lock while files are parsed (the app) call
    :func:`prepare_load` first, then :func:`store_prepared` under the lock."""
    prepared = prepare_load(files, dataset, mapping, source=source, store=store, limits=limits, policy=policy,
                            bad_rows=bad_rows)
    return store_prepared(prepared, workspace)


def prepare_load(files: list[tuple[str, bytes | str | Path]], dataset: str = "main", mapping: Mapping | None = None,
                 *, source: str | None = None, store: MappingStore | str | Path | None = None,
                 limits: Limits | None = None, policy: Policy | None = None,
                 bad_rows: BadRows | None = None) -> LoadResult:
    """Everything of a load that needs no workspace: permission, read, map, validate. The result (version
    None) goes to :func:`store_prepared`; nothing is stored here."""
    if policy is not None:
        from ..auth import require

        require(policy, "load_data")
    dataset = check_name(dataset)
    prepared = _prepare(files, mapping, store, limits, bad_rows)
    tables, report = prepared.tables, prepared.report
    result = LoadResult(report, tables, None, dataset, dataset_kind(tables), labels=prepared.labels,
                        mapping=prepared.mapping)
    result.source = source or ", ".join(n for n, _ in files)
    return result


def dataset_meta(result: LoadResult) -> dict:
    """What the data set's meta records about a load: label kinds, and from the mapping the label roles,
    protected columns, currency, observation date, the tables present and the mapping itself."""
    tables = result.tables
    meta: dict = {"labels": result.labels, "tables": [t for t in tables]}
    if result.mapping is not None:  # what the mapping declares about the data set (see Mapping)
        m = result.mapping
        if roles := {k: v for k, v in m.label_roles().items() if k in result.labels}:
            meta["label_roles"] = roles
        if protected := [c for c in m.protected() if any(c in df for df in tables.values())]:
            meta["protected"] = protected
        if m.currency:
            meta["currency"] = m.currency
        if m.observation_date and m.observation_date in tables.get("customers", {}):
            meta["observation_date"] = m.observation_date
        meta["mapping"] = m.to_dict()
    return meta


def store_prepared(result: LoadResult, workspace: Workspace) -> LoadResult:
    """Store a :func:`prepare_load` result when its report has no errors, replacing the data set atomically
    (a failure leaves the previous data intact); sets ``version`` and ``fingerprint``."""
    if not result.report.ok:
        return result
    try:
        result.version = workspace.replace_dataset(result.dataset, result.tables, source=result.source,
                                                   kind=result.kind, meta=dataset_meta(result))
    except (duckdb.Error, ValueError, TypeError, OverflowError) as e:  # rolled back: the previous data is intact
        result.report.issues.append(issue("store_failed", result.dataset, detail=type(e).__name__))
        result.version = None
        return result
    result.fingerprint = workspace.fingerprint(result.dataset)
    return result

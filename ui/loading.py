"""Loading data into the workspace from the app: uploads, the demo portfolio, and first-start setup.

Each call returns a :class:`LoadOutcome` the data page can render in either language. A failed load
never touches the workspace (``ingest.store_prepared`` replaces a dataset only when validation passes, in
one transaction), so the previous data stays active. Files are read and validated (:func:`prepare_files`,
no lock held) before the workspace lock is taken to store them (:func:`store_files`): a slow or hostile
upload never blocks other sessions.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from profile_core.ingest import LoadResult, ValidationReport, prepare_load, store_prepared
from profile_core.store import check_name
from ui import cache, keys, state

log = logging.getLogger(__name__)

DEMO_DATASET = "demo"
DEMO_CUSTOMERS, DEMO_SEED = 2000, 7
UPLOAD_TYPES = ["csv", "tsv", "txt", "asc", "dat", "xlsx", "xls", "parquet", "gz", "zip"]  # text of any name


@dataclass
class LoadOutcome:
    ok: bool
    dataset: str
    files: list[str] = field(default_factory=list)
    report: ValidationReport | None = None
    version: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    error_key: str | None = None  # a ui.toml message when the load failed before validation
    error_values: dict = field(default_factory=dict)

    def summary(self, lang: str) -> str:
        """One sentence: what happened, in ``lang``."""
        from profile_core.i18n import t

        if self.error_key:
            return t(self.error_key, lang, **self.error_values)
        text = self.report.summary(lang) if self.report is not None else ""
        if self.ok:
            rows = ", ".join(f"{t('data.table.' + k, lang)} {v:,}" for k, v in self.counts.items())
            return f"{text} {t('data.loaded', lang, dataset=self.dataset, version=self.version, rows=rows)}"
        return text


def mapping_store():
    """Saved column mappings (``mappings/`` beside the workspace): a later upload with the same header gets
    its saved mapping applied automatically."""
    from profile_core.ingest import store_for

    return store_for(state.workspace_path())


def repair_mapping_state(prefix: str) -> None:
    """Guard for ``ui.mapping_step``: a run interrupted between its clearing and re-filling of session state
    (a click while the proposal is computed) can leave the file signature without the mapping; dropping
    the signature makes the step propose again instead of failing with a KeyError."""
    if f"{prefix}-state-mapping" not in st.session_state:
        st.session_state.pop(f"{prefix}-state-files", None)


@dataclass
class PendingLoad:
    """Files read and validated, not stored yet: ``result`` (a prepared load) or ``outcome`` (it failed
    before validation)."""

    names: list[str]
    result: LoadResult | None = None
    outcome: LoadOutcome | None = None


def prepare_files(files: list[tuple[str, bytes | Path]], dataset: str, *, source: str | None = None,
                  mapping=None, as_system: bool = False, bad_rows: str | None = None) -> PendingLoad:
    """Read and validate ``files`` (with ``mapping`` — a confirmed ``profile_core.ingest.Mapping`` — or the
    saved mappings applied) for ``dataset``, without touching the workspace. The user's policy is enforced
    in profile_core, except for the app's own first-start demo load. ``bad_rows``: "refuse" or "skip"."""
    names = [n for n, _ in files]
    if not files:
        return PendingLoad(names, outcome=LoadOutcome(False, dataset, names, error_key="data.no_files"))
    try:
        dataset = check_name(dataset.strip())
    except ValueError:
        return PendingLoad(names, outcome=LoadOutcome(False, dataset, names, error_key="data.bad_dataset_name",
                                                      error_values={"name": dataset}))
    result = prepare_load(files, dataset, mapping, source=source, store=mapping_store(),
                          policy=None if as_system else state.policy(), bad_rows=bad_rows)
    return PendingLoad(names, result=result)


def store_files(pending: PendingLoad) -> LoadOutcome:
    """Store a prepared load under the workspace lock (only the write holds it); sets the data set active
    on success and records the outcome for the report."""
    if pending.outcome is not None:
        st.session_state[keys.LAST_LOAD] = pending.outcome
        return pending.outcome
    names = pending.names
    result = pending.result
    if result.report.ok:
        with cache.workspace() as ws:
            result = store_prepared(result, ws)
    ok = result.report.ok and result.version is not None
    outcome = LoadOutcome(ok, result.dataset, names, result.report, result.version,
                          {k: len(v) for k, v in result.tables.items()} if ok else {})
    if ok:
        state.set_active_dataset(result.dataset)
    st.session_state[keys.LAST_LOAD] = outcome
    return outcome


def load_files(files: list[tuple[str, bytes | Path]], dataset: str, *, source: str | None = None,
               mapping=None, as_system: bool = False, bad_rows: str | None = None) -> LoadOutcome:
    """:func:`prepare_files` (no lock), then :func:`store_files` (the lock for the write only)."""
    return store_files(prepare_files(files, dataset, source=source, mapping=mapping, as_system=as_system,
                                     bad_rows=bad_rows))


def upload_pairs(uploaded: list) -> list[tuple[str, bytes]]:
    return [(f.name, f.getvalue()) if hasattr(f, "getvalue") else (f[0], f[1]) for f in uploaded or []]


def prepare_upload(uploaded: list, dataset: str, mapping=None, bad_rows: str | None = None) -> PendingLoad:
    """Streamlit ``UploadedFile`` objects (or ``(name, bytes)`` pairs) → :func:`prepare_files`."""
    return prepare_files(upload_pairs(uploaded), dataset, mapping=mapping, bad_rows=bad_rows)


def handle_upload(uploaded: list, dataset: str = "main", mapping=None, bad_rows: str | None = None) -> LoadOutcome:
    """Streamlit ``UploadedFile`` objects (or ``(name, bytes)`` pairs) → :func:`load_files`."""
    return load_files(upload_pairs(uploaded), dataset, mapping=mapping, bad_rows=bad_rows)


# ------------------------------------------------------------------ demo portfolio


def demo_files() -> list[tuple[str, Path]]:
    """The demo portfolio's table files, generating them with ``synth`` when the folder is empty."""
    folder = state.demo_data_dir()
    found = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if found:
        return [(p.name, p) for p in found]
    from profile_core.synth import generate_portfolio, write_portfolio

    portfolio = generate_portfolio(DEMO_CUSTOMERS, DEMO_SEED)
    try:
        paths = write_portfolio(portfolio, folder)
    except OSError:  # read-only checkout: keep the files for this process only
        paths = write_portfolio(portfolio, tempfile.mkdtemp(prefix="profile-demo-"))
    return [(Path(p).name, Path(p)) for p in paths.values()]


def prepare_demo(*, as_system: bool = False) -> PendingLoad:
    """The demo portfolio read and validated for the ``demo`` dataset (no lock held)."""
    return prepare_files(demo_files(), DEMO_DATASET, source="demo", as_system=as_system)


def load_demo(*, as_system: bool = False) -> LoadOutcome:
    """(Re)load the demo portfolio into the ``demo`` dataset and make it active."""
    return store_demo(prepare_demo(as_system=as_system))


def store_demo(pending: PendingLoad) -> LoadOutcome:
    """Store the prepared demo portfolio and mark it as the demo (see :func:`store_files`)."""
    outcome = store_files(pending)
    if outcome.ok:  # demo-ness is this marker in the workspace metadata, never the source's name
        from profile_core.auth import mark_demo

        with cache.workspace() as ws:
            mark_demo(ws, outcome.dataset)
    return outcome


def list_bundles() -> list[Path]:
    """Bundle folders (those holding a ``manifest.json``): the demo bundle first, then ``models/*``."""
    out: list[Path] = []
    demo = state.demo_bundle_dir()
    if (demo / "manifest.json").is_file():
        out.append(demo)
    root = state.models_dir()
    if root.is_dir():
        for p in sorted(root.iterdir()):
            if (p / "manifest.json").is_file() and p.resolve() not in {q.resolve() for q in out}:
                out.append(p)
    return out


def bootstrap() -> None:
    """First run of a session: load the demo data into an empty workspace and make the demo bundle active.
    Failures are logged and leave the app usable (the data page can load data by hand)."""
    if st.session_state.get(keys.BOOTSTRAPPED):
        return
    st.session_state[keys.BOOTSTRAPPED] = True
    try:
        with cache.workspace() as ws:  # held across check and load: two first sessions load the demo once
            if ws.list_datasets().empty and state.settings().demo:  # PROFILE_DEMO=0: no demo data
                with st.spinner(state.tr("app.loading_demo")):
                    load_demo(as_system=True)
    except Exception:  # noqa: BLE001 — first start must never take the app down
        log.exception("loading the demo portfolio failed")


def sync_active() -> None:
    """Every run: the active dataset must still exist (another session may have replaced it) and the
    active bundle folder too; otherwise fall back to ``main``, then the first dataset, or none."""
    try:
        names = cache.datasets()["name"].tolist()
    except Exception:  # noqa: BLE001 — an unreadable workspace shows as "no data"
        log.exception("reading the workspace failed")
        names = []
    if state.active_dataset() not in names:  # the user's last data set, else the workspace default
        user = state._user()
        with cache.workspace() as ws:
            mine = ws.user_pref(user.username, "dataset") if user is not None and names else None
            default = mine if mine in names else (ws.default_dataset() if names else None)
        state.set_active_dataset(default or (names[0] if names else None))

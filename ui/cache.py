"""The only place with Streamlit caching: thin wrappers around profile_core calls.

Keys: frames are cached by (workspace path, dataset, dataset fingerprint); bundles by (path, weights sha);
predictions by (dataset fingerprint, bundle sha). Arguments Streamlit must not hash carry a leading ``_``.
A new load changes the fingerprint, so stale entries are never served (``max_entries`` bounds them).

DuckDB: one :class:`~profile_core.store.Workspace` (one connection) per file and process, shared by all
sessions; every use goes through :func:`workspace` as a context manager, which holds a process-wide lock
so that two sessions (script threads) never use the connection at the same time.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import streamlit as st

from profile_core.store import Workspace
from ui import keys, state

IDLE_CLOSE_S = 0.3  # the DuckDB file is released this long after the last block ends (serve / CLI take turns)
_STOP = threading.Event()  # set at interpreter exit: closers stop before DuckDB is torn down
atexit.register(_STOP.set)


class _Shared:
    """One workspace per file and process, its lock, and a closer that releases the file when idle."""

    def __init__(self, path: str) -> None:
        self.ws, self.lock = Workspace(path), threading.RLock()
        self.depth, self.last_exit = 0, time.monotonic()
        threading.Thread(target=self._closer, name="workspace-closer", daemon=True).start()

    def _closer(self) -> None:
        while not _STOP.wait(IDLE_CLOSE_S / 2):
            if self.ws._con is not None and self.depth == 0 and time.monotonic() - self.last_exit > IDLE_CLOSE_S:
                with self.lock:
                    if self.depth == 0:
                        self.ws.close()


@st.cache_resource(show_spinner=False)
def _workspace(path: str) -> _Shared:
    return _Shared(path)


def _session_user():
    """The signed-in user of the running script, or None (worker threads, deferred downloads, no session)."""
    try:
        from ui import auth

        return auth.current_user()
    except Exception:  # noqa: BLE001 - outside a script run there is no session
        return None


@contextmanager
def workspace(path: str | Path | None = None) -> Iterator[Workspace]:
    """The shared workspace of ``path`` (default: this app's), locked for the duration of the block. Changes
    are made for the signed-in user (``Workspace.acting``: demo rules, no silent replacement — an upload
    replaces a data set only when ``keys.NEW_VERSION_OF`` names it) and registry changes are audited in the
    app's log. The file is released for other processes shortly after the last block ends."""
    shared = _workspace(str(path or state.workspace_path()))
    with shared.lock:
        shared.depth += 1
        try:
            if shared.depth == 1:
                from ui import audit

                shared.ws.audit = audit.audit_log()
                user = _session_user()
                intent = st.session_state.get(keys.NEW_VERSION_OF) if user is not None else None
                with shared.ws.acting(user, new_version_of=intent):
                    yield shared.ws
            else:
                yield shared.ws
        finally:
            shared.depth -= 1
            shared.last_exit = time.monotonic()


def datasets() -> pd.DataFrame:
    with workspace() as ws:
        return ws.list_datasets()


def dataset_fingerprint(name: str) -> str | None:
    with workspace() as ws:
        return ws.fingerprint(name) if ws.has_dataset(name) else None


@st.cache_data(show_spinner=False, max_entries=8)
def tables(path: str, name: str, fingerprint: str) -> dict[str, pd.DataFrame]:
    """All canonical tables of dataset ``name`` (``fingerprint`` only keys the cache)."""
    with workspace(path) as ws:
        return {t: ws.read_table(name, t) for t in ws.tables(name)}


@st.cache_data(show_spinner=False, max_entries=8)
def feature_table(path: str, name: str, fingerprint: str) -> pd.DataFrame:
    """One row per customer: features and labels (``features.build_feature_table`` over the workspace)."""
    from profile_core.features import build_feature_table

    with workspace(path) as ws:  # a flat dataset is a customers table carrying its labels: same call
        return build_feature_table(ws.con, tables=ws.relation_names(name),
                                   observation_date=ws.meta(name).get("observation_date"))


@st.cache_data(show_spinner=False, max_entries=8)
def feature_fingerprint(path: str, name: str, fingerprint: str) -> str:
    """``pipeline.data_fingerprint`` of the feature table (what bundles record as their training data)."""
    from profile_core.pipeline import data_fingerprint

    return data_fingerprint(feature_table(path, name, fingerprint))


def active_feature_fingerprint() -> str | None:
    name = state.active_dataset()
    fp = dataset_fingerprint(name) if name else None
    return feature_fingerprint(str(state.workspace_path()), name, fp) if fp else None


def active_tables() -> dict[str, pd.DataFrame]:
    name = state.active_dataset()
    fp = dataset_fingerprint(name) if name else None
    if not fp:
        return {}
    return tables(str(state.workspace_path()), name, fp)


def dataset_labels(name: str | None) -> dict[str, str]:
    """Label column → kind the load recorded for dataset ``name`` (``Workspace.meta(name)["labels"]``)."""
    if not name:
        return {}
    with workspace() as ws:
        if not ws.has_dataset(name):
            return {}
        labels = ws.meta(name).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def dataset_meta(name: str | None) -> dict:
    """The meta the load recorded for dataset ``name`` (labels, roles, protected columns, mapping)."""
    if not name:
        return {}
    with workspace() as ws:
        return ws.meta(name) if ws.has_dataset(name) else {}


def rm_ids() -> list[str]:
    """Relationship managers of the active dataset (for the sidebar's RM selector)."""
    customers = active_tables().get("customers")
    if customers is None or "rm_id" not in customers.columns:
        return []
    return sorted(str(v) for v in customers["rm_id"].dropna().unique())


def masked_tables() -> dict[str, pd.DataFrame]:
    """The active tables as this session's role may see them (``privacy.mask_frame``): an RM only their
    customers, identities masked unless the policy reveals them, counterparties always masked."""
    from profile_core.privacy import mask_frame

    frames = active_tables()
    customers = frames.get("customers")
    owners = None
    if customers is not None and {"customer_id", "rm_id"} <= set(customers.columns):
        owners = dict(zip(customers["customer_id"], customers["rm_id"], strict=True))
    policy = state.policy()
    return {name: mask_frame(df, policy, owners=owners) for name, df in frames.items()}


def visible(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (one row per customer, with ``rm_id``) as this session's role may see it."""
    from profile_core.privacy import mask_frame

    return mask_frame(frame, state.policy())


def active_features() -> pd.DataFrame | None:
    """The feature table of the active dataset, or None when no dataset is active."""
    name = state.active_dataset()
    fp = dataset_fingerprint(name) if name else None
    if not fp:
        return None
    return feature_table(str(state.workspace_path()), name, fp)


# ------------------------------------------------------------------ bundles and predictions


@st.cache_resource(show_spinner=False, max_entries=8)
def bundle(path: str, sha: str):
    """A loaded model bundle (``sha`` — the manifest's weights hash — keys the cache)."""
    from profile_core.bundle import load_bundle

    return load_bundle(path)


def active_bundle():
    """The active bundle, loaded (cached by its weights hash); None when none is active."""
    from profile_core.bundle import read_manifest

    path = state.active_bundle()
    if path is None:
        return None
    return bundle(str(path), str(read_manifest(path).get("weights_sha256", "")))


@st.cache_data(show_spinner=False, max_entries=8)
def predictions(path: str, name: str, fingerprint: str, bundle_path: str, sha: str) -> pd.DataFrame:
    """``bundle.predict`` over the whole feature table, cached per (dataset fingerprint, bundle sha); refused
    (``bundle.require_inputs``) when the data lacks the model's inputs."""
    from profile_core.bundle import require_inputs

    model, frame = bundle(bundle_path, sha), feature_table(path, name, fingerprint)
    require_inputs(model, frame)
    return model.predict(frame)


@st.cache_data(show_spinner=False, max_entries=8)
def portfolio(path: str, name: str, fingerprint: str, bundle_path: str, sha: str) -> pd.DataFrame:
    """Per-customer score, PD, grade and grouping columns (``views.portfolio_frame``)."""
    from profile_core.views import portfolio_frame

    return portfolio_frame(predictions(path, name, fingerprint, bundle_path, sha),
                           feature_table(path, name, fingerprint), bundle(bundle_path, sha).tasks)


def _active_keys() -> tuple[str, str, str, str, str] | None:
    from profile_core.bundle import read_manifest

    name, bpath = state.active_dataset(), state.active_bundle()
    fp = dataset_fingerprint(name) if name else None
    if not fp or bpath is None:
        return None
    return str(state.workspace_path()), name, fp, str(bpath), str(read_manifest(bpath).get("weights_sha256", ""))


def active_predictions() -> pd.DataFrame | None:
    keys_ = _active_keys()
    return predictions(*keys_) if keys_ else None


def active_portfolio():
    """(bundle, portfolio frame) for the active dataset and bundle; raises what loading/predicting raises."""
    keys_ = _active_keys()
    if keys_ is None:
        return None, None
    return bundle(keys_[3], keys_[4]), portfolio(*keys_)


# ------------------------------------------------------------------ customer card and explanations
# Built once per (dataset fingerprint, bundle weights sha) and shared by all sessions: switching customers
# then only builds one card (tens of milliseconds), never anything portfolio-wide.

EXPLAIN_BACKGROUND = 100  # background rows of the SHAP explainer (seeded sample of the portfolio)
EXPLAIN_SAMPLE = 1000  # customers in the portfolio sample of the global explanations
EXPLAIN_SEED = 0


@st.cache_resource(show_spinner=False, max_entries=4)
def head_explainer(path: str, name: str, fingerprint: str, bundle_path: str, sha: str):
    """A warm ``explain.HeadExplainer`` of the bundle with a seeded background from the dataset."""
    from profile_core.explain import HeadExplainer

    return HeadExplainer(bundle(bundle_path, sha), feature_table(path, name, fingerprint),
                         n_background=EXPLAIN_BACKGROUND, seed=EXPLAIN_SEED)


@st.cache_resource(show_spinner=False, max_entries=4)
def card_context(path: str, name: str, fingerprint: str, bundle_path: str | None = None, sha: str | None = None):
    """``profile.CardContext`` of the dataset, with the bundle's predictions and a warm explainer when a
    bundle is given (raises what predicting raises: a bundle trained on other columns)."""
    from profile_core.profile import CardContext

    preds = explainer = None
    if bundle_path:
        preds = predictions(path, name, fingerprint, bundle_path, str(sha))
        explainer = head_explainer(path, name, fingerprint, bundle_path, str(sha))
    return CardContext(tables(path, name, fingerprint), feature_table(path, name, fingerprint), preds,
                       explainer=explainer)


@st.cache_resource(show_spinner=False, max_entries=4)
def customer_index(path: str, name: str, fingerprint: str, bundle_path: str | None = None, sha: str | None = None,
                   *, _context) -> pd.DataFrame:
    """One row per customer of the dataset, unmasked (callers pass it through :func:`visible`): customer_id,
    name, city, rm_id, ``grade`` (when a bundle is given) and the customer's tag texts ``tags_zh`` / ``tags_en``
    (tuples) — what the customer search and filters need, built once. Do not modify the returned frame."""
    customers = _context.customers
    out = customers[[c for c in ("customer_id", "name", "city", "rm_id") if c in customers.columns]]
    out = out.reset_index(drop=True).assign(customer_id=lambda f: f["customer_id"].astype("str"))
    if bundle_path:
        scored = portfolio(path, name, fingerprint, bundle_path, str(sha))
        out["grade"] = out["customer_id"].map(dict(zip(scored["customer_id"].astype("str"), scored["grade"],
                                                       strict=True)))
    tags = _context.all_tags()
    for lang in ("zh", "en"):
        out[f"tags_{lang}"] = out["customer_id"].map(lambda cid, lang=lang: tuple(t.text(lang) for t in tags.get(cid, ())))
    return out


@st.cache_resource(show_spinner=False, max_entries=4)
def portfolio_explanation(path: str, name: str, fingerprint: str, bundle_path: str, sha: str,
                          n: int = EXPLAIN_SAMPLE, seed: int = EXPLAIN_SEED):
    """Attribute-level SHAP of every head on a seeded sample of at most ``n`` customers (global views)."""
    import numpy as np

    from profile_core.explain import to_attributes

    features = feature_table(path, name, fingerprint)
    rows = np.sort(np.random.default_rng(seed).choice(len(features), min(n, len(features)), replace=False))
    sample = features.iloc[rows]
    explainer = head_explainer(path, name, fingerprint, bundle_path, sha)
    return to_attributes(explainer.explain(sample), explainer.preprocessor, sample)


def _active_data_keys() -> tuple[str, str, str] | None:
    name = state.active_dataset()
    fp = dataset_fingerprint(name) if name else None
    return (str(state.workspace_path()), name, fp) if fp else None


def active_card_context(with_model: bool = True):
    """The card context of the active dataset (with the active bundle unless ``with_model`` is False); None
    without a dataset."""
    data = _active_data_keys()
    if data is None:
        return None
    model = _active_keys() if with_model else None
    return card_context(*model) if model else card_context(*data)


def active_customer_index(context, with_model: bool = True) -> pd.DataFrame:
    """:func:`customer_index` of the active dataset (graded by the active bundle unless ``with_model`` is
    False), as this session's role may see it (``visible``: an RM only their own, names masked per policy)."""
    data = _active_data_keys()
    if data is None:
        return pd.DataFrame(columns=["customer_id"])
    model = _active_keys() if with_model else None
    return visible(customer_index(*(model or data), _context=context))


def active_head_explainer():
    keys_ = _active_keys()
    return head_explainer(*keys_) if keys_ else None


def active_portfolio_explanation():
    keys_ = _active_keys()
    return portfolio_explanation(*keys_) if keys_ else None


# ------------------------------------------------------------------ warming: heavy work off the page


_WARMING: dict[tuple, object] = {}
_WARMING_LOCK = threading.Lock()


def warm_active() -> object | None:
    """Start (once per process and (data set fingerprint, model weights sha)) a background job that builds what
    the heavy pages need — predictions, the portfolio frame, the card context with its warm explainer and the
    portfolio explanation — into the shared caches above, so the first visit of the customer, explanation and
    portfolio pages finds them ready instead of computing for tens of seconds. Returns the ``ui.jobs.Job``
    (its ``phase`` says how far it is), or None without a data set and model."""
    from ui.jobs import Job

    keys_ = _active_keys()
    if keys_ is None:
        return None
    with _WARMING_LOCK:
        job = _WARMING.get(keys_)
        if job is None:
            def target(job: Job) -> None:
                for phase, build in (("predictions", lambda: predictions(*keys_)),
                                     ("portfolio", lambda: portfolio(*keys_)),
                                     ("card", lambda: card_context(*keys_)),
                                     ("explanations", lambda: portfolio_explanation(*keys_))):
                    if job.cancel_event.is_set():
                        return
                    job.set_phase(phase)
                    build()

            job = _WARMING[keys_] = Job(target, name="warm", meta={"keys": keys_})
            job.start()
    return job


@atexit.register
def _stop_warming(timeout: float = 120.0) -> None:
    """At process exit, cancel the warm-up jobs and wait for them: a daemon thread still inside torch or DuckDB
    when the interpreter shuts down aborts the process ("terminate called without an active exception")."""
    jobs = list(_WARMING.values())
    for job in jobs:
        job.cancel()
    for job in jobs:
        job.join(timeout)

"""REST API (FastAPI) over a model bundle and, optionally, a workspace dataset.

Endpoints (and who may call them; ``auth.PERMISSIONS``)::

    POST /v1/score                      customers' raw attributes → every task's prediction, points, PD grade
                                        (``score``: analyst, admin)
    POST /v1/explain                    → per task: reason codes (zh/en) and the top SHAP values (``score``)
    GET  /v1/customers/{id}/profile     the panorama card from the workspace dataset, masked by the caller
                                        (``view_customers``: rm — own customers only —, analyst, admin)
    GET  /v1/customers/{id}/similar     the k most similar customers in the model's shared representation
                                        (``profile_core.similar``), within the caller's scope, names masked
    GET  /v1/model                      manifest summary and metrics (``view_monitoring``)
    GET  /healthz                       liveness (no key needed)
    GET  /docs, /openapi.json           off by default; with ``docs=True`` behind a key like the rest

Before any body is read (a pure ASGI guard in front of FastAPI): the key is checked (401), the role's
permission for the path (403) and the declared size (413 over ``max_body_bytes``, default 8 MiB); a body sent
without a length is counted while it streams in and cut off at the limit. Numbers must be finite and within
±1e15 (422 naming the field). With a workspace, every profile request first checks that the dataset's version
is still the one loaded at start: after a new load the server answers 409 (restart it to serve the new data),
so a customer removed by the load is never served.

Request models are generated from the bundle's feature schema (``Preprocessor.numeric`` → ``float | None``,
``Preprocessor.categorical`` → ``str | None``, unknown fields forbidden), so a bad request gets 422 with the
field named. Callers authenticate with the ``X-API-Key`` header; the keys file stores only sha256 hashes
(see :func:`new_key`), each with a role (``rm`` + ``rm_id``, ``analyst``, ``auditor``, ``admin`` [+ ``reveal``])
that becomes a ``privacy.Policy`` — the same masking as the app. An RM asking for another RM's customer
gets the same 404 as for an unknown customer (no existence leak).

Heavy objects (bundle, explainer, card context) are built once in :func:`create_app`. Scoring is the same
``scoring.score_chunk`` the CLI and batch scoring use, so the numbers are the same. "模型辅助，人工决策".
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoint annotations at runtime and they
# refer to request models generated inside create_app.

import hashlib
import json
import logging
import math
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from anyio import CapacityLimiter
from anyio.to_thread import run_sync
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, create_model

import profile_core
from profile_core.auth import Forbidden, require
from profile_core.i18n import DEFAULT_LANG, LANGS, t
from profile_core.privacy import AccessDenied, Policy
from profile_core.scoring import MAX_ABS_INPUT  # beyond it: 422
from profile_core.settings import current as current_settings

log = logging.getLogger("profile_core.service")

API_KEY_HEADER = "X-API-Key"
MAX_SCORE_CUSTOMERS = 10_000  # per /v1/score request
MAX_EXPLAIN_CUSTOMERS = 50  # per /v1/explain request (SHAP costs ~100× a prediction)
MAX_TOP = 20
MAX_BODY_BYTES = 8 << 20  # default request-size limit (a 10,000-customer score request is ~6 MB)
#: Path → the permission it needs (checked before the body is read; the endpoints check again).
ROUTE_PERMISSIONS = (("/v1/score", "score"), ("/v1/explain", "score"), ("/v1/model", "view_monitoring"),
                     ("/v1/customers/", "view_customers"))
OPEN_PATHS = frozenset({"/healthz"})
_SHA256 = re.compile(r"[0-9a-f]{64}")
Lang = Literal["zh", "en"]


# --- API keys ------------------------------------------------------------------------------------------------

def hash_key(key: str) -> str:
    """The sha256 hex digest stored in the keys file for ``key``."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who a key belongs to; ``policy`` is what they may see."""

    name: str
    role: str
    rm_id: str | None = None
    reveal: bool = False

    @property
    def policy(self) -> Policy:
        return Policy(self.role, rm_id=self.rm_id, reveal=self.reveal)  # type: ignore[arg-type]


def _entries(raw: Any) -> list[dict]:
    if isinstance(raw, Mapping) and "keys" in raw:
        raw = raw["keys"]
    if isinstance(raw, Mapping):  # {sha256: {role, rm_id, ...}}
        return [{"sha256": k, **dict(v)} for k, v in raw.items()]
    if isinstance(raw, list):
        return [dict(e) for e in raw]
    raise ValueError('a keys file holds {"keys": [{"sha256": ..., "role": ..., "rm_id": ...}, ...]}')


def load_keys(keys: Mapping | list | str | Path) -> dict[str, Caller]:
    """sha256 → Caller from a keys file (JSON) or the same structure in memory::

        {"keys": [{"sha256": "<64 hex>", "role": "rm", "rm_id": "RM005", "name": "张三"},
                  {"sha256": "<64 hex>", "role": "admin", "reveal": true}]}

    Plain keys are refused: an entry must carry the hash (``hash_key``), never the key itself.
    """
    source = keys
    if isinstance(keys, str | Path):
        source = json.loads(Path(keys).read_text(encoding="utf-8"))
    out: dict[str, Caller] = {}
    for i, entry in enumerate(_entries(source)):
        if "key" in entry or "api_key" in entry:
            raise ValueError(f"keys entry {i} holds a plain key: store only its sha256 (profile_core.service.hash_key)")
        digest = str(entry.get("sha256", "")).strip().lower()
        if not _SHA256.fullmatch(digest):
            raise ValueError(f"keys entry {i}: 'sha256' must be 64 hex characters (the hash of the key)")
        caller = Caller(name=str(entry.get("name") or f"key{i}"), role=str(entry.get("role", "")),
                        rm_id=entry.get("rm_id"), reveal=bool(entry.get("reveal", False)))
        caller.policy  # noqa: B018 (validates role, rm_id and reveal now, not at the first request)
        out[digest] = caller
    return out


def new_key(path: str | Path, role: str, *, rm_id: str | None = None, name: str = "", reveal: bool = False) -> str:
    """Create a random API key for ``role``, add its hash to the keys file at ``path`` (created with mode 600
    when missing) and return the key — the only time it is shown."""
    Caller(name or role, role, rm_id, reveal).policy  # noqa: B018 (validate before writing)
    path = Path(path)
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"keys": []}
    entries = _entries(data)
    key = secrets.token_urlsafe(32)
    entry = {"sha256": hash_key(key), "role": role, "name": name or f"{role}-{len(entries) + 1}"}
    if rm_id:
        entry["rm_id"] = rm_id
    if reveal:
        entry["reveal"] = True
    entries.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"keys": entries}, f, ensure_ascii=False, indent=2)
    os.replace(tmp, path)
    return key


# --- request models generated from the feature schema ----------------------------------------------------------

def _describe(col: str, extra: str = "") -> str:
    from profile_core.features import feature_info

    info = feature_info(col)
    unit = f" [{info.unit_en}]" if info.unit_en else ""
    return f"{info.zh} / {info.en}{unit}{extra}"


def customer_model(preprocessor) -> type[BaseModel]:
    """One customer's raw attributes: ``customer_id`` (optional) and every model input (optional; a missing
    value is imputed as in training). Numbers are ``float | None``, categories ``str | None`` (numbers given
    for a category are read as text, as in training); any other field is an error."""
    fields: dict[str, Any] = {"customer_id": (str | None, Field(None, max_length=128, description="客户ID / customer ID"))}
    for i, col in enumerate(preprocessor.numeric):
        fields[f"n{i}"] = (float | None, Field(None, alias=col, allow_inf_nan=False, ge=-MAX_ABS_INPUT,
                                                le=MAX_ABS_INPUT, description=_describe(col)))
    for i, col in enumerate(preprocessor.categorical):
        known = preprocessor.categories.get(col, [])
        hint = f"; known: {', '.join(known[:20])}" if known else ""
        fields[f"c{i}"] = (str | None, Field(None, alias=col, max_length=200, description=_describe(col, hint)))
    config = ConfigDict(extra="forbid", populate_by_name=False, coerce_numbers_to_str=True)
    return create_model("CustomerAttributes", __config__=config, **fields)


class TaskOutput(BaseModel):
    kind: Literal["regression", "binary", "multiclass"]
    value: float | None = Field(None, description="regression: prediction in the label's units")
    probability: float | None = Field(None, description="binary: P(positive class), e.g. P(default)")
    label: str | None = Field(None, description="multiclass: predicted class")
    probabilities: dict[str, float] | None = Field(None, description="multiclass: P(class)")
    target: str | None = Field(None, description="the label column as the data names it")
    role: Literal["pd", "score", "grade", "propensity", "churn", "generic"] | None = Field(
        None, description="pd: probability of default (feeds points and pd_grade); score: a credit score; "
                          "grade: a risk class; propensity: P(buying a product); churn: P(leaving the bank); "
                          "generic: anything else")


class CustomerScore(BaseModel):
    customer_id: str | None = None
    tasks: dict[str, TaskOutput]
    points: float | None = Field(None, description="scorecard points from PD (600 at 50:1, PDO 40, 300–850)")
    pd_grade: str | None = Field(None, description="A–E by PD band (<1%, 1–3%, 3–8%, 8–20%, ≥20%)")


class ScoreResponse(BaseModel):
    model: str
    customers: list[CustomerScore]
    notice: str


class ReasonOut(BaseModel):
    attribute: str
    name: str
    value: str
    percentile: float | None = None
    shap: float
    risk: float
    sentence: str


class Contribution(BaseModel):
    attribute: str
    name: str
    shap: float


class TaskExplanation(BaseModel):
    output_kind: str
    base_value: float
    output: float
    explained_class: str | None = None
    up: list[ReasonOut]
    down: list[ReasonOut]
    top_shap: list[Contribution]


class CustomerExplanation(BaseModel):
    customer_id: str
    tasks: dict[str, TaskExplanation]


class ExplainResponse(BaseModel):
    model: str
    method: str
    lang: str
    customers: list[CustomerExplanation]
    notice: str


class TagOut(BaseModel):
    family: str
    key: str
    text: str
    tone: str


class ProfileResponse(BaseModel):
    customer_id: str
    lang: str
    identity: dict[str, Any]
    outputs: dict[str, Any]
    attributes: list[dict[str, Any]]
    tags: list[TagOut]
    monthly_flows: list[dict[str, Any]]
    login_heatmap: list[list[int]] = Field(description="7 weekdays (Monday first) × 24 hours, login counts")
    recent_transactions: list[dict[str, Any]]
    reasons: dict[str, dict[str, list[ReasonOut]]]
    warnings: list[str]
    as_of: str
    notice: str


class SimilarOut(BaseModel):
    rank: int
    customer_id: str
    name: str | None = None
    similarity: float = Field(description="cosine similarity in the model's shared representation (1 = same)")
    predictions: dict[str, Any] = Field(description="each head's prediction column (<task>_pred / <task>_prob)")
    observed: dict[str, Any] = Field(description="each head's label where the data has it, else null")


class SimilarResponse(BaseModel):
    customer_id: str
    k: int
    customers: list[SimilarOut]
    notice: str


# --- JSON helpers ---------------------------------------------------------------------------------------------

def jsonable(value: Any) -> Any:
    """Plain JSON values: NaN/NA → None, numpy scalars → Python, timestamps → ISO strings, frames → records."""
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict(orient="records")]
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp | np.datetime64):
        return None if pd.isna(value) else pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str | int | bool):
        return value
    return str(value)


def _reason(r) -> dict[str, Any]:
    return {"attribute": r.attribute, "name": r.name, "value": r.value,
            "percentile": None if r.percentile is None or not math.isfinite(r.percentile) else float(r.percentile),
            "shap": float(r.shap), "risk": float(r.risk), "sentence": r.sentence}


def card_json(card) -> dict[str, Any]:
    """A ``profile.ProfileCard`` as JSON-able data (its identity is already masked by the policy)."""
    from dataclasses import asdict

    heat = card.login_heatmap.to_numpy(dtype=float) if len(card.login_heatmap) else np.zeros((7, 24))
    return {
        "customer_id": card.customer_id, "lang": card.lang, "identity": jsonable(card.identity),
        "outputs": jsonable(asdict(card.outputs)), "attributes": jsonable(card.attributes),
        "tags": [{"family": g.family, "key": g.key, "text": g.text(card.lang), "tone": g.tone} for g in card.tags],
        "monthly_flows": jsonable(card.monthly_flows), "login_heatmap": heat.astype(int).tolist(),
        "recent_transactions": jsonable(card.recent_transactions),
        "reasons": {task: {"up": [_reason(r) for r in rc.up], "down": [_reason(r) for r in rc.down]}
                    for task, rc in card.reasons.items()},
        "warnings": [w.text for w in card.warnings], "as_of": card.as_of, "notice": card.notice,
    }


def scores_json(cols: Mapping[str, np.ndarray], tasks) -> list[dict[str, Any]]:
    """``scoring.score_columns`` output → one ``CustomerScore`` dict per row."""
    n = len(next(iter(cols.values())))
    lists = {k: v.tolist() for k, v in cols.items()}  # Python floats and str, in one pass per column
    rows = []
    for i in range(n):
        tasks_out: dict[str, dict[str, Any]] = {}
        for task in tasks:
            name = task.name
            if task.kind == "regression":
                tasks_out[name] = {"kind": "regression", "value": lists[f"{name}_pred"][i]}
            elif task.kind == "binary":
                tasks_out[name] = {"kind": "binary", "probability": lists[f"{name}_prob"][i]}
            else:
                tasks_out[name] = {"kind": "multiclass", "label": str(lists[f"{name}_pred"][i]),
                                   "probabilities": {str(c): lists[f"{name}_prob_{c}"][i] for c in task.classes}}
            tasks_out[name] |= {"target": task.label, "role": task.role}
        cid = lists["customer_id"][i] if "customer_id" in lists else None
        rows.append({"customer_id": cid if isinstance(cid, str) else None, "tasks": tasks_out,
                     "points": lists["points"][i] if "points" in lists else None,
                     "pd_grade": str(lists["pd_grade"][i]) if "pd_grade" in lists else None})
    return rows


# --- the application ------------------------------------------------------------------------------------------

def median_frame(preprocessor) -> pd.DataFrame:
    """One typical customer (numeric medians, most frequent categories): the SHAP reference when the server
    has no dataset to sample a background from."""
    logged = set(getattr(preprocessor, "log", []))  # medians of signed-log columns are on the log scale
    row: dict[str, Any] = {"customer_id": ["(median)"]}
    row |= {c: [float(np.sign(m) * np.expm1(abs(m))) if c in logged else float(m)]
            for c, m in zip(preprocessor.numeric, preprocessor.median, strict=True)}
    row |= {c: [preprocessor.fill[c]] for c in preprocessor.categorical}
    return pd.DataFrame(row)


@dataclass
class _State:
    bundle: Any
    explainer: Any
    population: pd.DataFrame  # feature frame the reason-code percentiles compare with (may be empty)
    context: Any | None  # profile.CardContext when a dataset is loaded
    dataset: dict[str, Any] | None
    callers: dict[str, Caller] | None  # None: no keys configured (every caller is an 'analyst')
    lock: threading.Lock  # the explainer's DeepLIFT replay is run one request at a time
    workspace: str | None = None  # the DuckDB file the dataset was read from
    version: int | None = None  # the dataset version loaded at start


def _dataset_version(workspace: str | Path, dataset: str, retry_s: float = 2.0) -> tuple[int, str] | None:
    """(version, fingerprint) of ``dataset`` in the workspace now (None when it is gone); waits up to
    ``retry_s`` while another process holds the file, then raises ``duckdb.IOException``."""
    import time

    import duckdb

    from profile_core.store import check_name

    deadline = time.monotonic() + retry_s
    while True:
        try:
            con = duckdb.connect(str(workspace))
            break
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        row = con.execute("SELECT version, fingerprint FROM _datasets WHERE name = ?", [check_name(dataset)]).fetchone()
    finally:
        con.close()
    return (int(row[0]), str(row[1])) if row else None


class RequestGuard:
    """Pure ASGI guard in front of the app: key (401) and the path's permission (403) from the headers, then
    the body size (413: a declared length over ``max_body``, or a streamed body once it passes it) — all
    before FastAPI reads or parses a byte of the body."""

    def __init__(self, app, *, callers: dict[str, Caller] | None, max_body: int) -> None:
        self.app, self.callers, self.max_body = app, callers, max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        lang = "en" if headers.get("accept-language", "").lower().startswith("en") else DEFAULT_LANG
        path = scope.get("path", "")
        if path not in OPEN_PATHS and self.callers is not None:
            key = headers.get(API_KEY_HEADER.lower())
            who = self.callers.get(hash_key(key)) if key else None
            if who is None:
                await _send_json(send, 401, {"detail": t("service.unauthorized", lang, header=API_KEY_HEADER)},
                                 [(b"www-authenticate", b"ApiKey")])
                return
            action = next((a for prefix, a in ROUTE_PERMISSIONS if path.startswith(prefix)), None)
            if action is not None:
                try:
                    require(who.policy, action)
                except Forbidden as err:
                    await _send_json(send, 403, {"detail": err.message(lang)})
                    return
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            await _send_json(send, 413, {"detail": t("service.too_large", lang, limit=_mib(self.max_body))},
                             [(b"connection", b"close")])
            return
        seen, started = 0, False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _BodyTooLarge(lang, self.max_body)
            return message

        async def watched_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except _BodyTooLarge:
            if not started:
                await _send_json(send, 413, {"detail": t("service.too_large", lang, limit=_mib(self.max_body))},
                                 [(b"connection", b"close")])


class _BodyTooLarge(HTTPException):
    """Raised by the counting receive: FastAPI passes HTTP exceptions through its body parsing, so the caller
    gets this 413 (not a generic 400)."""

    def __init__(self, lang: str, limit: int) -> None:
        super().__init__(413, detail=t("service.too_large", lang, limit=_mib(limit)))


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


async def _send_json(send, status: int, content: dict, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(content, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def _load_dataset(workspace: str | Path, dataset: str) -> tuple[dict[str, pd.DataFrame], str]:
    from profile_core.store import Workspace

    ws = Workspace(workspace)
    try:
        if not ws.has_dataset(dataset):
            raise ValueError(f"workspace {workspace} has no dataset {dataset!r}: load one with "
                             f"`python -m profile_core load ... --dataset {dataset}`")
        return {name: ws.read_table(dataset, name) for name in ws.tables(dataset)}, ws.fingerprint(dataset)
    finally:
        ws.close()


def _request_lang(request: Request) -> str:
    lang = request.query_params.get("lang")
    if lang in LANGS:
        return lang
    accept = request.headers.get("accept-language", "").lower()
    return "en" if accept.startswith("en") else DEFAULT_LANG


def _field_path(loc: tuple | list) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    text = ""
    for p in parts:
        text += f"[{p}]" if p.isdigit() else (f".{p}" if text else p)
    return text or "body"


def create_app(bundle_path: str | Path, *, workspace: str | Path | None = None, dataset: str = "main",
               keys: Mapping | list | str | Path | None = None, audit: str | Path | None = None,
               n_background: int = 100, compute_threads: int = 2, max_body_bytes: int = MAX_BODY_BYTES,
               docs: bool = False, lake: str | Path | None = None, features: str | Path | None = None) -> FastAPI:
    """The API over the bundle at ``bundle_path``; with ``workspace`` the customer profiles (and the SHAP
    background and percentiles) come from its ``dataset``; with ``lake`` (a partitioned data set,
    ``profile_core.lake``, read-only) and its feature file ``features`` each profile reads one customer by key
    (``lake.LakeCards``: percentiles and SHAP background from a 10k-row sample), never the portfolio. ``keys``: a keys file or its content
    (:func:`load_keys`); ``None`` disables authentication (every caller is treated as an ``analyst``:
    masked identities) — only for local use, :func:`serve` refuses it on a non-loopback host.

    Roles follow the app's rules (``auth.PERMISSIONS``): profiles need ``view_customers`` (not an auditor), the
    model endpoint ``view_monitoring`` (not an RM); an RM sees only their own customers (others: 404). With
    ``audit`` (an ``audit.AuditLog`` path, e.g. the app's ``<workspace>.audit.jsonl``), every profile lookup
    (``view_card``) and explanation (``view_explanation``) is recorded; a profile is not returned when its
    record cannot be written.

    Model work runs in at most ``compute_threads`` worker threads (the event loop stays free for I/O; more
    threads only contend for the GIL with one torch thread each — scale with processes instead).

    ``max_body_bytes``: the request-size limit (413 above it, checked before the body is read); ``docs``:
    serve ``/docs`` and ``/openapi.json`` (behind a key like every other path; off by default). The audit
    log's head is anchored in ``workspace`` when one is given (``audit.WorkspaceAnchor``)."""
    from profile_core.bundle import load_bundle
    from profile_core.explain import HeadExplainer
    from profile_core.scoring import score_chunk, score_columns

    bundle = load_bundle(bundle_path)
    callers = None if keys is None else load_keys(keys)
    context, info, similar_inputs = None, None, None
    if workspace is not None:
        from profile_core.features import build_features_from_frames
        from profile_core.profile import CardContext

        version = _dataset_version(workspace, dataset)
        tables, fingerprint = _load_dataset(workspace, dataset)
        features = build_features_from_frames(tables)
        from profile_core.bundle import require_inputs

        require_inputs(bundle, features)  # a model made for other data is refused at start, not served
        explainer = HeadExplainer(bundle, features, n_background=n_background)
        scores = score_chunk(bundle, features)
        context = CardContext(tables, features, scores, explainer=explainer)
        similar_inputs = (features, scores, tables.get("customers"))
        population = features
        info = {"name": dataset, "customers": int(len(features)), "fingerprint": fingerprint,
                "as_of": str(features.attrs.get("as_of", ""))}
    elif lake is not None:
        from profile_core.lake import LakeCards

        context = LakeCards(lake, features, bundle)
        explainer, population = context.explainer, context.reference
        info = {"name": Path(lake).name, "customers": int(context.meta["n_customers"]), "fingerprint": "",
                "as_of": str(context.reference.attrs.get("as_of", ""))}
    else:
        explainer = HeadExplainer(bundle, median_frame(bundle.preprocessor), n_background=1)
        population = pd.DataFrame(columns=bundle.preprocessor.numeric + bundle.preprocessor.categorical)
    state = _State(bundle, explainer, population, context, info, callers, threading.Lock())
    similar: dict[str, Any] = {}  # the SimilarIndex, built on the first /similar request
    if workspace is not None:
        state.workspace, state.version = str(workspace), version[0] if version else None
        info["version"] = state.version
    limiter = CapacityLimiter(compute_threads)
    audit_log = None
    if audit is not None:
        from profile_core.audit import AuditLog, WorkspaceAnchor

        audit_log = AuditLog(audit, anchor=WorkspaceAnchor(workspace) if workspace is not None else None)

    def check_dataset(lang: str) -> None:
        """409 when the dataset was replaced or dropped since the start (never serve removed customers); 503
        when the workspace cannot be read to tell."""
        import duckdb

        if state.workspace is None:  # a lake is read-only: nothing to check
            return

        try:
            now = _dataset_version(state.workspace, dataset)
        except duckdb.Error:
            log.warning("workspace %s busy: cannot check the dataset version", state.workspace)
            raise HTTPException(503, detail=t("service.workspace_busy", lang)) from None
        if now is None or now[0] != state.version or now[1] != state.dataset["fingerprint"]:
            raise HTTPException(409, detail=t("service.data_changed", lang, dataset=dataset,
                                              loaded=state.version, now=now[0] if now else "-"))

    def allow(who: Caller, action: str, lang: str) -> None:
        try:
            require(who.policy, action)
        except Forbidden as err:
            raise HTTPException(403, detail=err.message(lang)) from None

    def record(who: Caller, action: str, target: str, lang: str, **details: Any) -> None:
        """Append to the audit log (when configured); a failed write refuses the request."""
        if audit_log is None:
            return
        from profile_core.audit import AuditIntegrityError

        try:
            audit_log.append(who.name, who.role, action, target, {"via": "api", **details})
        except AuditIntegrityError as exc:  # refused until an auditor repairs the log: say so and how
            raise HTTPException(503, detail=exc.message(lang)) from None
        except Exception as exc:  # noqa: BLE001 - never answer unaudited; no personal data in the log line
            log.error("audit log write failed: %s (%s)", type(exc).__name__, action)
            raise HTTPException(503, detail=t("service.audit_failed", lang)) from None

    Customer = customer_model(bundle.preprocessor)
    ScoreRequest = create_model(
        "ScoreRequest", __config__=ConfigDict(extra="forbid"),
        customers=(list[Customer], Field(min_length=1, max_length=MAX_SCORE_CUSTOMERS)))
    task_names = [task.name for task in bundle.tasks]
    ExplainRequest = create_model(
        "ExplainRequest", __config__=ConfigDict(extra="forbid"),
        customers=(list[Customer], Field(min_length=1, max_length=MAX_EXPLAIN_CUSTOMERS)),
        lang=(Lang, Field("zh", description="language of names and sentences")),
        top=(int, Field(4, ge=1, le=MAX_TOP, description="reasons per side and SHAP values per task")),
        tasks=(list[Literal[tuple(task_names)]] | None, Field(None, description="default: every task")))  # type: ignore[valid-type]

    app = FastAPI(
        docs_url="/docs" if docs else None, redoc_url=None, openapi_url="/openapi.json" if docs else None,
        title="客户全景画像 API / Customer Panorama API", version=profile_core.__version__,
        description=(f"Model **{bundle.name}** ({bundle.manifest['architecture']['name']}); tasks: "
                     f"{', '.join(task_names)}. Send the `X-API-Key` header. {t('app.notice', 'zh')} "
                     f"{t('app.notice', 'en')}"))
    app.state.profile = state
    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="API key (the server stores its sha256)")

    async def caller(request: Request, key: str | None = Depends(key_header)) -> Caller:
        if state.callers is None:
            return Caller("anonymous", "analyst")
        found = state.callers.get(hash_key(key)) if key else None
        if found is None:
            raise HTTPException(401, detail=t("service.unauthorized", _request_lang(request), header=API_KEY_HEADER),
                                headers={"WWW-Authenticate": "ApiKey"})
        return found

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                  for e in exc.errors()]
        first = errors[0] if errors else {"loc": [], "msg": ""}
        message = t("service.invalid", _request_lang(request), field=_field_path(first["loc"]), problem=first["msg"],
                    n=len(errors))
        return JSONResponse(status_code=422, content={"detail": errors, "message": message})

    @app.get("/healthz", tags=["meta"], summary="liveness")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": bundle.name, "dataset": state.dataset["name"] if state.dataset else None}

    @app.get("/v1/model", tags=["meta"], summary="model manifest summary and metrics")
    def model_info(request: Request, who: Caller = Depends(caller)) -> dict[str, Any]:
        allow(who, "view_monitoring", _request_lang(request))
        m = bundle.manifest
        keep = ("name", "created_utc", "tasks", "architecture", "config", "metrics", "best_epoch", "split_sizes",
                "data_fingerprint", "versions", "weights_sha256", "train_seconds", "label_stats")
        out = {k: m[k] for k in keep if k in m}
        out["features"] = {"numeric": list(bundle.preprocessor.numeric),
                           "categorical": list(bundle.preprocessor.categorical),
                           "model_inputs": len(bundle.preprocessor.output_names)}
        out["explainer"] = {"method": explainer.method, "background_rows": int(len(explainer.background))}
        out["dataset"] = state.dataset
        out["notice"] = t("app.notice", "zh")
        return jsonable(out)

    pre = bundle.preprocessor

    def frame_of(customers: list[BaseModel]) -> pd.DataFrame:
        """Validated customers → a typed feature frame (float64 numbers, str categories), as read from a file."""
        rows = [c.model_dump(by_alias=True) for c in customers]
        data: dict[str, Any] = {"customer_id": pd.array([r["customer_id"] for r in rows], dtype="str")}
        for col in pre.numeric:
            data[col] = np.array([np.nan if r[col] is None else r[col] for r in rows], dtype=float)
        for col in pre.categorical:
            data[col] = pd.array([r[col] for r in rows], dtype="str")
        return pd.DataFrame(data)

    @app.post("/v1/score", response_model=ScoreResponse, response_model_exclude_none=True, tags=["scoring"],
              summary="every task's prediction, scorecard points and PD grade")
    async def score(body: ScoreRequest, request: Request,  # type: ignore[valid-type]
                    who: Caller = Depends(caller)) -> dict[str, Any]:
        allow(who, "score", _request_lang(request))
        return await run_sync(partial(score_body, body), limiter=limiter)

    def score_body(body) -> dict[str, Any]:
        cols = score_columns(bundle, frame_of(body.customers))  # = scoring.score_chunk's columns
        return {"model": bundle.name, "customers": scores_json(cols, bundle.tasks), "notice": t("app.notice", "zh")}

    @app.post("/v1/explain", response_model=ExplainResponse, response_model_exclude_none=True,
              tags=["explanations"], summary="per-task reason codes and top SHAP values")
    async def explain(body: ExplainRequest, who: Caller = Depends(caller)) -> dict[str, Any]:  # type: ignore[valid-type]
        allow(who, "score", body.lang)
        return await run_sync(partial(explain_body, body, who), limiter=limiter)

    def explain_body(body, who: Caller) -> dict[str, Any]:
        from profile_core.explain import reason_codes, to_attributes

        frame = frame_of(body.customers)
        ids = [c if isinstance(c, str) and c else f"#{i}" for i, c in enumerate(frame["customer_id"])]
        if len(set(ids)) < len(ids):
            raise HTTPException(422, detail=t("service.duplicate_ids", body.lang))
        frame["customer_id"] = pd.array(ids, dtype="str")
        tasks = list(body.tasks) if body.tasks else task_names
        record(who, "view_explanation", ",".join(ids[:20]), body.lang, customers=len(ids))
        with state.lock:
            expl = to_attributes(explainer.explain(frame, tasks), bundle.preprocessor, frame)
        names = expl.features["zh" if body.lang == "zh" else "en"]
        out = []
        for cid in ids:
            per_task = {}
            for task in tasks:
                rc = reason_codes(expl, frame, cid, task, lang=body.lang, top=body.top, population=state.population)
                row = expl.values[task].loc[cid]
                top = row.abs().sort_values(ascending=False, kind="stable").index[:body.top]
                classes = expl.explained_class.get(task)
                i = expl.customer_ids.get_loc(cid)
                per_task[task] = {
                    "output_kind": expl.output_kind[task], "base_value": float(expl.base_values[task][i]),
                    "output": float(expl.outputs[task][i]),
                    "explained_class": None if classes is None else str(classes[i]),
                    "up": [_reason(r) for r in rc.up], "down": [_reason(r) for r in rc.down],
                    "top_shap": [{"attribute": a, "name": str(names.get(a, a)), "shap": float(row[a])} for a in top]}
            out.append({"customer_id": cid, "tasks": per_task})
        return {"model": bundle.name, "method": explainer.method, "lang": body.lang, "customers": out,
                "notice": t("app.notice", body.lang)}

    @app.get("/v1/customers/{customer_id}/profile", response_model=ProfileResponse, tags=["customers"],
             summary="the panorama card, masked for the caller's role",
             responses={404: {"description": "unknown customer, or not one the caller may see"}})
    async def profile(customer_id: str, lang: Lang = Query("zh"), top: int = Query(4, ge=1, le=MAX_TOP),
                      who: Caller = Depends(caller)) -> dict[str, Any]:
        return await run_sync(partial(profile_body, customer_id, lang, top, who), limiter=limiter)

    def profile_body(customer_id: str, lang: str, top: int, who: Caller) -> dict[str, Any]:
        allow(who, "view_customers", lang)  # by role only: says nothing about the customer
        if state.context is None:
            raise HTTPException(404, detail=t("service.no_dataset", lang))
        check_dataset(lang)
        try:
            with state.lock:
                card = state.context.card(customer_id, policy=who.policy, lang=lang, top_reasons=top)
        except (KeyError, AccessDenied):  # the same answer for both: no hint that the customer exists
            record(who, "view_card", customer_id, lang, found=False)
            raise HTTPException(404, detail=t("service.not_found", lang, customer=customer_id)) from None
        record(who, "view_card", customer_id, lang, found=True, reveal=who.reveal)
        return card_json(card)

    @app.get("/v1/customers/{customer_id}/similar", response_model=SimilarResponse, tags=["customers"],
             summary="the most similar customers the caller may see, with predictions and observed outcomes",
             responses={404: {"description": "unknown customer, or not one the caller may see"}})
    async def similar_customers(customer_id: str, lang: Lang = Query("zh"),
                                k: int = Query(5, ge=1, le=50), who: Caller = Depends(caller)) -> dict[str, Any]:
        return await run_sync(partial(similar_body, customer_id, lang, k, who), limiter=limiter)

    def similar_body(customer_id: str, lang: str, k: int, who: Caller) -> dict[str, Any]:
        from profile_core.similar import build_index, head_columns

        allow(who, "view_customers", lang)
        if state.context is None:
            raise HTTPException(404, detail=t("service.no_dataset", lang))
        check_dataset(lang)
        with state.lock:
            if "index" not in similar:
                features_, scores_, customers_ = similar_inputs
                similar["index"] = build_index(bundle, features_, scores_, customers=customers_)
            index = similar["index"]
            try:
                found = index.neighbours(customer_id, who.policy, k=k)
            except (KeyError, AccessDenied):  # the same answer for both, as for profiles
                record(who, "view_similar", customer_id, lang, found=False)
                raise HTTPException(404, detail=t("service.not_found", lang, customer=customer_id)) from None
        record(who, "view_similar", customer_id, lang, found=True, k=k, shown=len(found))
        rows = []
        for row in found.to_dict(orient="records"):
            rows.append({"rank": int(row["rank"]), "customer_id": str(row["customer_id"]),
                         "name": row.get("name"), "similarity": float(row["similarity"]),
                         "predictions": {head_columns(task): row.get(head_columns(task)) for task in index.tasks},
                         "observed": {task.name: row.get(f"label:{task.name}") for task in index.tasks}})
        return jsonable({"customer_id": customer_id, "k": k, "customers": rows, "notice": t("app.notice", lang)})

    app.add_middleware(RequestGuard, callers=callers, max_body=max_body_bytes)  # runs before any body is read
    return app


# --- serving ---------------------------------------------------------------------------------------------------

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_ENV = "PROFILE_CORE_SERVE"


def app_from_env() -> FastAPI:
    """uvicorn factory for several worker processes: ``create_app`` with the JSON arguments in
    ``$PROFILE_CORE_SERVE`` (set by :func:`serve`)."""
    import torch

    args = json.loads(os.environ[_ENV])
    torch.set_num_threads(int(args.pop("torch_threads", 1)))
    return create_app(args.pop("bundle_path"), **args)


def serve(bundle_path: str | Path, *, host: str = "127.0.0.1", port: int = 8000, workspace: str | Path | None = None,
          dataset: str = "main", keys: str | Path | None = None, audit: str | Path | None = None, workers: int = 1,
          torch_threads: int = 1, compute_threads: int = 2, log_level: str = "info", access_log: bool = True,
          max_body_bytes: int = MAX_BODY_BYTES, docs: bool = False, lake: str | Path | None = None,
          features: str | Path | None = None) -> None:
    """Run the API with uvicorn (blocking). One torch thread per process by default (small nets, shared
    CPUs); ``workers`` > 1 starts that many processes, each loading the bundle once. The audit log is
    ``audit``, else ``$PROFILE_AUDIT``, else ``<workspace>.audit.jsonl`` (the app's) when a workspace is given."""
    import torch
    import uvicorn

    if keys is None and host not in _LOOPBACK:
        raise SystemExit(f"refusing to serve without --keys on {host}: create keys with `python -m profile_core "
                         "new-key` or bind to 127.0.0.1")
    if keys is None:
        log.warning("no keys file: authentication is off and every caller is an analyst (local use only)")
    torch.set_num_threads(torch_threads)
    if audit is None:
        audit = current_settings().audit or (f"{workspace}.audit.jsonl" if workspace else None)
    kwargs = {"host": host, "port": port, "log_level": log_level, "access_log": access_log}
    if workers > 1:
        os.environ[_ENV] = json.dumps({"bundle_path": str(bundle_path), "workspace": workspace and str(workspace),
                                       "dataset": dataset, "keys": keys and str(keys), "audit": audit and str(audit),
                                       "torch_threads": torch_threads, "compute_threads": compute_threads,
                                       "max_body_bytes": max_body_bytes, "docs": docs,
                                       "lake": lake and str(lake), "features": features and str(features)})
        uvicorn.run("profile_core.service:app_from_env", factory=True, workers=workers, **kwargs)
    else:
        uvicorn.run(create_app(bundle_path, workspace=workspace, dataset=dataset, keys=keys, audit=audit,
                               compute_threads=compute_threads, max_body_bytes=max_body_bytes, docs=docs,
                               lake=lake, features=features), **kwargs)


def main(argv: list[str] | None = None) -> int:
    """``python -m profile_core.service --bundle models/demo --port 8000 [...]`` (the same as ``serve``)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m profile_core.service", description=__doc__.splitlines()[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workspace")
    p.add_argument("--dataset", default="main")
    p.add_argument("--keys")
    p.add_argument("--audit", help="audit log (default: $PROFILE_AUDIT, else <workspace>.audit.jsonl)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--torch-threads", type=int, default=1)
    p.add_argument("--compute-threads", type=int, default=2, help="threads running model work per process")
    p.add_argument("--log-level", default="info")
    p.add_argument("--no-access-log", action="store_true")
    p.add_argument("--max-body-mb", type=float, default=MAX_BODY_BYTES / (1 << 20),
                   help="request-size limit (413 above it, before the body is read)")
    p.add_argument("--docs", action="store_true", help="serve /docs and /openapi.json (behind a key)")
    a = p.parse_args(argv)
    serve(a.bundle, host=a.host, port=a.port, workspace=a.workspace, dataset=a.dataset, keys=a.keys, audit=a.audit,
          workers=a.workers, torch_threads=a.torch_threads, compute_threads=a.compute_threads,
          log_level=a.log_level, access_log=not a.no_access_log, max_body_bytes=int(a.max_body_mb * (1 << 20)),
          docs=a.docs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

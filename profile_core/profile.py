"""The panorama card of one customer, as data: identity (masked by policy), model outputs with scorecard
points and grades, the attribute table by category, tags, monthly flows, a login heat map, recent
transactions, reason codes and heads-disagree warnings. A renderer in ``ui/`` draws it.

``CardContext`` does the portfolio-wide work once (tables indexed by customer, percentile ranks, tag
inputs); ``CardContext.card(customer_id, policy=...)`` then builds a card in milliseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from profile_core.campaign import (
    MAX_GRADE,
    NextBest,
    Retention,
    next_best_product,
    product_name,
    retention_alert,
)
from profile_core.explain import (
    Explanation,
    HeadExplainer,
    ReasonCodes,
    format_value,
    reason_codes,
    to_attributes,
)
from profile_core.features import LABEL_COLUMNS, LOGIN_VALUES, MOBILE_VALUES, feature_info
from profile_core.i18n import t
from profile_core.privacy import Policy, mask_counterparty
from profile_core.schema import CATEGORIES, personal_columns
from profile_core.scorecard import GRADES, pd_grade, scorecard_points
from profile_core.tasks import TaskSpec, default_tasks

TOP_SHARE = 0.30  # "credit score in the top 30%" for the heads-disagree warning
GRADE_GAP = 2  # risk head and PD grade this many grades apart → warning


# --- tags -----------------------------------------------------------------------------------------------

# Thresholds of the tag rules (features of profile_core.features; shares are 0–1).
NEW_MONTHS = 12
DORMANT_DAYS = 90
GROWING_TREND = 1.2  # monthly transaction count, last 3 months vs last 12 months
HIGH_UTIL = 0.7
MANY_INQUIRIES_3M = 3
NIGHT_TXN_SHARE, NIGHT_LOGIN_SHARE = 0.10, 0.20
STABLE_INCOME, VOLATILE_INCOME = 0.25, 0.60  # std/mean of monthly inflow
SAVER_RATIO, SPENDER_RATIO = 0.70, 1.0  # outflow / inflow
ACTIVE_LOGINS = 6  # per month, last 3 months
MAIN_CHANNEL_SHARE = 0.5
CHANNEL_GROUPS: dict[str, tuple[str, ...]] = {  # recognised channel values (lower-cased)
    "mobile": (*MOBILE_VALUES, "第三方支付", "third-party payment", "wechat", "alipay", "微信", "支付宝"),
    "web": ("网上银行", "网银", "web", "online", "online banking", "internet banking", "pc"),
    "offline": ("柜面", "柜台", "网点", "counter", "branch", "atm", "pos"),
}
TONES = ("good", "neutral", "warn", "bad")
RECENT_COLUMNS = ["txn_time", "amount", "direction", "channel", "category", "counterparty"]


@dataclass(frozen=True)
class Tag:
    family: str  # value | lifecycle | channel | product | risk | income | spending | engagement
    key: str  # message key
    zh: str
    en: str
    tone: str  # good | neutral | warn | bad

    def text(self, lang: str = "zh") -> str:
        return self.zh if lang == "zh" else self.en


def _tag(family: str, name: str, tone: str, **values: Any) -> Tag:
    key = f"profile.tag.{family}.{name}"
    return Tag(family, key, t(key, "zh", **values), t(key, "en", **values), tone)


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    return pd.to_numeric(frame[name], errors="coerce") if name in frame.columns \
        else pd.Series(np.nan, index=frame.index)


def _tertile(s: pd.Series) -> pd.Series:
    """1–3 by portfolio tertile (missing → 1)."""
    return (np.ceil(s.rank(pct=True) * 3).clip(1, 3)).fillna(1)


def _tag_inputs(features: pd.DataFrame, transactions: pd.DataFrame | None, behaviors: pd.DataFrame | None
                ) -> pd.DataFrame:
    """Per-customer inputs of the tag rules, computed once for the portfolio (index customer_id)."""
    f = features
    count_12m = _col(f, "txn_in_count_12m") + _col(f, "txn_out_count_12m")
    count_3m = _col(f, "txn_in_count_3m") + _col(f, "txn_out_count_3m")
    amount = _col(f, "txn_in_amount_12m") + _col(f, "txn_out_amount_12m")
    recency = _col(f, "days_since_last_txn")
    out = pd.DataFrame({
        "rfm": _tertile(-recency) + _tertile(count_12m) + _tertile(amount),
        "tenure": _col(f, "tenure_months"), "recency": recency, "count_12m": count_12m,
        "trend": (count_3m / 3) / (count_12m / 12).replace(0, np.nan),
        "util": _col(f, "util_latest"), "dpd_3m": _col(f, "max_dpd_3m"), "inquiries_3m": _col(f, "inquiries_3m"),
        "night_txn": _col(f, "night_txn_share_12m"), "night_login": _col(f, "night_login_share_12m"),
        "volatility": _col(f, "inflow_volatility_12m"), "spend_ratio": _col(f, "spend_income_ratio_12m"),
        "logins": _col(f, "login_per_month_3m"), "loans": _col(f, "loan_count_latest"),
    })
    out.index = f["customer_id"].astype("str").to_numpy()
    # whether the data set has event tables at all: a flat loan file gets no event-based tags
    out["txn_data"], out["beh_data"] = transactions is not None, behaviors is not None
    out["channel"], out["channel_share"], out["product"] = None, np.nan, None
    if transactions is not None and len(transactions) and "channel" in transactions.columns:
        ch = transactions["channel"].astype("str").str.strip().str.lower()
        group = pd.Series(None, index=ch.index, dtype=object)
        for name, values in CHANNEL_GROUPS.items():
            group[ch.isin([v.lower() for v in values])] = name
        counts = pd.crosstab(transactions["customer_id"].astype("str"), group.fillna("other"))
        shares = counts.div(counts.sum(axis=1), axis=0)
        main = shares.drop(columns="other", errors="ignore")
        if main.shape[1]:
            out.loc[main.index, "channel"] = main.idxmax(axis=1)
            out.loc[main.index, "channel_share"] = main.max(axis=1)
    if behaviors is not None and len(behaviors) and "product" in behaviors.columns:
        b = behaviors[behaviors["product"].notna()]
        if len(b):
            counts = b.groupby([b["customer_id"].astype("str").rename("cid"), b["product"].rename("product")],
                               sort=True).size().rename("n").reset_index()
            top = counts.sort_values("n", ascending=False, kind="stable").drop_duplicates("cid").set_index("cid")
            out.loc[top.index.intersection(out.index), "product"] = top["product"]
    return out


def _tags(row: pd.Series) -> list[Tag]:
    tags: list[Tag] = []
    rfm = row["rfm"]
    if row["txn_data"]:
        tags.append(_tag("value", "high", "good") if rfm >= 8 else _tag("value", "mid", "neutral") if rfm >= 5
                    else _tag("value", "low", "neutral"))
    if row["tenure"] < NEW_MONTHS:
        tags.append(_tag("lifecycle", "new", "neutral"))
    elif not row["txn_data"]:
        pass  # no transactions in the data set: nothing says whether the customer is active or dormant
    elif not row["count_12m"] > 0 or row["recency"] > DORMANT_DAYS:
        tags.append(_tag("lifecycle", "dormant", "warn"))
    elif row["trend"] >= GROWING_TREND:
        tags.append(_tag("lifecycle", "growing", "good"))
    else:
        tags.append(_tag("lifecycle", "mature", "neutral"))
    if row["channel"] is not None and row["channel_share"] >= MAIN_CHANNEL_SHARE:
        tags.append(_tag("channel", str(row["channel"]), "neutral"))
    elif row["channel"] is not None:
        tags.append(_tag("channel", "mixed", "neutral"))
    if row["product"] is not None:
        tags.append(_tag("product", "interest", "neutral", product=row["product"]))
    if row["loans"] > 0:
        tags.append(_tag("product", "loans", "neutral", n=int(row["loans"])))
    risk = [_tag("risk", "high_util", "bad") if row["util"] >= HIGH_UTIL else None,
            _tag("risk", "recent_dpd", "bad") if row["dpd_3m"] > 0 else None,
            _tag("risk", "inquiries", "warn") if row["inquiries_3m"] >= MANY_INQUIRIES_3M else None,
            _tag("risk", "night", "warn") if row["night_txn"] >= NIGHT_TXN_SHARE
            or row["night_login"] >= NIGHT_LOGIN_SHARE else None]
    risk = [r for r in risk if r is not None]
    has_credit = not (pd.isna(row["util"]) and pd.isna(row["dpd_3m"]))
    tags += risk or ([_tag("risk", "clean", "good")] if has_credit else [])
    if row["volatility"] <= STABLE_INCOME:
        tags.append(_tag("income", "stable", "good"))
    elif row["volatility"] >= VOLATILE_INCOME:
        tags.append(_tag("income", "volatile", "warn"))
    elif not pd.isna(row["volatility"]):
        tags.append(_tag("income", "moderate", "neutral"))
    if row["spend_ratio"] >= SPENDER_RATIO:
        tags.append(_tag("spending", "spender", "warn"))
    elif row["spend_ratio"] <= SAVER_RATIO:
        tags.append(_tag("spending", "saver", "good"))
    elif not pd.isna(row["spend_ratio"]):
        tags.append(_tag("spending", "balanced", "neutral"))
    if row["logins"] >= ACTIVE_LOGINS:
        tags.append(_tag("engagement", "active", "good"))
    elif row["logins"] == 0 and row["beh_data"]:
        tags.append(_tag("engagement", "none", "neutral"))
    return tags


# --- the card -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CardWarning:
    key: str
    text: str


@dataclass
class TaskOutput:
    """One head's prediction for the card, named as the bank wrote its label."""

    task: str  # internal task id
    label: str  # the label column as written
    title: str  # display name in the card's language
    role: str  # pd | score | grade | propensity | churn | generic
    kind: str  # regression | binary | multiclass
    value: float | None = None  # regression: the prediction in the label's units; binary: P(positive)
    label_value: str | None = None  # multiclass: the predicted class
    probs: dict[str, float] = field(default_factory=dict)  # multiclass: P(class)
    percentile: float | None = None  # regression and marketing heads: among the portfolio's predictions, 0–100
    unit: str = ""
    product: str = ""  # a propensity head: the product's name in the card's language


@dataclass
class CardOutputs:
    """The headline comes from task roles: ``pd`` → PD, points, PD grade; ``score`` → credit score;
    ``grade`` → risk level. ``tasks`` holds every head (generic ones included) in the bundle's order."""

    credit_score: float | None  # the score task's prediction
    pd: float | None  # the pd task's probability
    points: float | None  # scorecard points from PD
    pd_grade: str | None  # A–E from the PD bands
    risk_level: str | None  # the grade task's predicted level (when the model has one)
    risk_probs: dict[str, float] = field(default_factory=dict)
    grade: str | None = None  # shown: the grade task's level if present, else the PD grade
    grade_source: str | None = None  # "risk_level" | "pd"
    credit_score_percentile: float | None = None  # among the portfolio's predictions, 0–100
    tasks: list[TaskOutput] = field(default_factory=list)
    titles: dict[str, str] = field(default_factory=dict)  # role → the title of the task that fills it
    next_best: NextBest | None = None  # 下一步推荐产品 from the propensity heads (campaign.next_best_product)
    retention: Retention | None = None  # a retention alert from the churn head (campaign.retention_alert)
    marketing_means: dict[str, float] = field(default_factory=dict)  # marketing head → the portfolio's mean


@dataclass
class ProfileCard:
    customer_id: str
    lang: str
    identity: dict[str, Any]  # masked by the policy
    outputs: CardOutputs
    attributes: pd.DataFrame  # category, category_zh, category_en, attribute, name, value, raw, percentile
    tags: list[Tag]
    monthly_flows: pd.DataFrame  # month, inflow, outflow (12 months to as_of)
    login_heatmap: pd.DataFrame  # index weekday 0–6 (Monday 0), columns hour 0–23, login counts
    recent_transactions: pd.DataFrame  # last 10; counterparty masked
    reasons: dict[str, ReasonCodes]
    warnings: list[CardWarning]
    as_of: str
    notice: str  # 模型辅助，人工决策
    has_transactions: bool = True  # the data set has a transactions table (flows, recent transactions)
    has_behaviors: bool = True  # the data set has app/web events (the login heat map)


def _by_customer(frame: pd.DataFrame | None) -> dict[str, np.ndarray]:
    if frame is None or not len(frame):
        return {}
    return {str(k): v for k, v in frame.groupby(frame["customer_id"].astype("str"), sort=False).indices.items()}


def _datetimes(frame: pd.DataFrame | None, column: str) -> pd.DataFrame | None:
    if frame is None or column not in frame.columns or pd.api.types.is_datetime64_any_dtype(frame[column]):
        return frame
    out = frame.copy()
    out[column] = pd.to_datetime(out[column], errors="coerce")
    return out


def _is_in(direction: pd.Series, amount: pd.Series) -> np.ndarray:
    d = direction.astype("str").str.strip().str.lower()
    return np.where(d.isin(["in", "收入", "入", "credit", "贷", "+"]), True,
                    np.where(d.isin(["out", "支出", "出", "debit", "借", "-"]), False, amount.to_numpy() > 0))


class CardContext:
    """Portfolio-wide state for fast cards: built once per (tables, features, predictions, explanation).

    ``explanation``: an attribute-level ``Explanation`` of the portfolio (reason codes are looked up; an
    input-level one is aggregated with the explainer's preprocessor); for customers it does not cover,
    ``explainer`` (a ``HeadExplainer``) is run on the one customer when the card is built.
    """

    def __init__(self, tables: Mapping[str, pd.DataFrame], features: pd.DataFrame,
                 predictions: pd.DataFrame | None = None, *, explanation: Explanation | None = None,
                 explainer: HeadExplainer | None = None, as_of: str | None = None,
                 tasks: list[TaskSpec] | None = None, max_grade: str | None = MAX_GRADE) -> None:
        self.customers = tables["customers"].copy()
        self.customers.index = self.customers["customer_id"].astype("str").to_numpy()
        self.transactions = _datetimes(tables.get("transactions"), "txn_time")
        self.behaviors = _datetimes(tables.get("behaviors"), "event_time")
        self._txn_rows, self._beh_rows = _by_customer(self.transactions), _by_customer(self.behaviors)
        self.features = features.set_index(features["customer_id"].astype("str").to_numpy())
        self._row_of = {cid: i for i, cid in enumerate(self.features.index)}
        self.explainer = explainer
        self._inputs = None if explainer is None else explainer.preprocessor.transform(features)
        self.as_of = pd.Timestamp(as_of or features.attrs.get("as_of") or self._last_event_date()).normalize()
        self._attribute_columns = [c for c in features.columns
                                   if c not in personal_columns() | {"customer_id", "rm_id"}]
        self._percentile = self._percentiles(self.features[self._attribute_columns])
        self._tag_inputs = _tag_inputs(features, self.transactions, self.behaviors)
        self._months = pd.period_range(end=self.as_of.to_period("M"), periods=12, freq="M")
        self._txn_month, self._txn_in, self._txn_out = self._flow_arrays()
        self._recent_columns = [c for c in RECENT_COLUMNS if self.transactions is not None
                                and c in self.transactions.columns]
        self._txn_ns = np.zeros(0, np.int64) if self.transactions is None else \
            self.transactions["txn_time"].to_numpy().astype("datetime64[ns]").astype(np.int64)
        self._login_slot = self._login_slots()
        self._attribute_meta = [(c, feature_info(c)) for c in self._attribute_columns]
        self.predictions = None
        if predictions is not None:
            self.predictions = predictions.set_index(predictions["customer_id"].astype("str").to_numpy())
        self.tasks = _card_tasks(tasks, explainer, self.predictions)
        ranked = [f"{t_.name}_pred" for t_ in self.tasks if t_.kind == "regression"]
        marketing = [f"{t_.name}_prob" for t_ in self.tasks if t_.role in ("propensity", "churn")]
        self._pred_pct = None if self.predictions is None else \
            self._percentiles(self.predictions[[c for c in ranked + marketing if c in self.predictions.columns]])
        self.max_grade = max_grade  # risk cut-off of the next best product (worse grades get no offer)
        self._marketing_means = {} if self.predictions is None else {
            c[: -len("_prob")]: float(self.predictions[c].astype(float).mean())
            for c in marketing if c in self.predictions.columns}
        if explanation is not None and explanation.level != "attribute":
            if explainer is None:
                raise ValueError("pass an attribute-level explanation (explain.to_attributes) or the explainer")
            explanation = to_attributes(explanation, explainer.preprocessor, features)
        self.explanation = explanation

    def _last_event_date(self) -> pd.Timestamp:
        times = [f[c].max() for f, c in ((self.transactions, "txn_time"), (self.behaviors, "event_time"))
                 if f is not None and len(f)]
        return max(times) if times else pd.Timestamp.today()

    @staticmethod
    def _percentiles(frame: pd.DataFrame) -> pd.DataFrame:
        """Share of customers with a strictly lower value, 0–100, per numeric column (NaN elsewhere)."""
        out = pd.DataFrame(index=frame.index)
        for col in frame.columns:
            s = frame[col]
            if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
                out[col] = 100 * (s.rank(method="min") - 1) / max(int(s.notna().sum()), 1)
        return out

    # -- pieces ------------------------------------------------------------------------------------------

    def _identity(self, row: pd.Series, policy: Policy) -> dict[str, Any]:
        shown = policy.mask_identity(row)
        keep = ("customer_id", "name", "id_number", "phone", "gender", "age", "city", "occupation", "education",
                "marital_status", "rm_id", "open_date")
        identity = {k: shown[k].item() if isinstance(shown[k], np.generic) else shown[k] for k in keep if k in shown}
        if "open_date" in identity and not pd.isna(identity["open_date"]):
            identity["open_date"] = str(pd.Timestamp(identity["open_date"]).date())
        tenure = self.features.at[row.name, "tenure_months"] \
            if row.name in self._row_of and "tenure_months" in self.features.columns else None
        identity["tenure_months"] = None if tenure is None or pd.isna(tenure) else int(tenure)
        return identity

    def _outputs(self, cid: str, lang: str = "zh") -> CardOutputs:
        if self.predictions is None or cid not in self.predictions.index:
            return CardOutputs(None, None, None, None, None)
        p = self.predictions.loc[cid]

        def num(col: str) -> float | None:
            return float(p[col]) if col in p.index and not pd.isna(p[col]) else None

        heads = []
        for task in self.tasks:
            out = TaskOutput(task.name, task.label, task.display(lang), task.role, task.kind,
                             unit=_unit(task, lang))
            if task.kind == "regression":
                out.value = num(f"{task.name}_pred")
                pct = self._pred_pct.at[cid, f"{task.name}_pred"] \
                    if self._pred_pct is not None and f"{task.name}_pred" in self._pred_pct.columns else np.nan
                out.percentile = None if pd.isna(pct) else float(pct)
            elif task.kind == "binary":
                out.value = num(f"{task.name}_prob")
                pct = self._pred_pct.at[cid, f"{task.name}_prob"] \
                    if self._pred_pct is not None and f"{task.name}_prob" in self._pred_pct.columns else np.nan
                out.percentile = None if pd.isna(pct) else float(pct)
                out.product = product_name(task, lang) if task.role == "propensity" else ""
            else:
                level = p.get(f"{task.name}_pred")
                out.label_value = None if level is None or pd.isna(level) else str(level)
                out.probs = {c: float(p[f"{task.name}_prob_{c}"]) for c in task.classes
                             if f"{task.name}_prob_{c}" in p.index}
            heads.append(out)
        by_role = {role: next((h for h in heads if h.role == role), None) for role in ("pd", "score", "grade")}
        pd_ = by_role["pd"].value if by_role["pd"] else None
        level = by_role["grade"].label_value if by_role["grade"] else None
        grade_pd = pd_grade(pd_) if pd_ is not None else None
        return CardOutputs(credit_score=by_role["score"].value if by_role["score"] else None, pd=pd_,
                           points=scorecard_points(pd_) if pd_ is not None else None, pd_grade=grade_pd,
                           risk_level=level, risk_probs=by_role["grade"].probs if by_role["grade"] else {},
                           grade=level or grade_pd,
                           grade_source="risk_level" if level else "pd" if grade_pd else None,
                           credit_score_percentile=by_role["score"].percentile if by_role["score"] else None,
                           tasks=heads, titles={r: h.title for r, h in by_role.items()  # a bank's own label names
                                                   if h is not None and h.label not in LABEL_COLUMNS},
                           marketing_means=dict(self._marketing_means))

    def _marketing(self, out: CardOutputs, reasons: dict[str, ReasonCodes], lang: str) -> None:
        """The next best product and the retention alert of a card's outputs (risk grade: the PD grade, else the
        grade head's level), each with its head's strongest reason."""
        top = {task: codes.up[0].sentence for task, codes in reasons.items() if codes.up}
        grade = out.pd_grade or (out.risk_level if out.grade_source == "risk_level" else None)
        out.next_best = next_best_product(out.tasks, grade=grade, max_grade=self.max_grade, reasons=top, lang=lang,
                                          products={h.task: h.product for h in out.tasks if h.product})
        out.retention = retention_alert(out.tasks, means=out.marketing_means, reasons=top, lang=lang)

    def _attributes(self, cid: str, lang: str) -> pd.DataFrame:
        cols = ["category", "category_zh", "category_en", "attribute", "name", "value", "raw", "percentile"]
        if cid not in self.features.index:
            return pd.DataFrame(columns=cols)
        row, pct = self.features.loc[cid], self._percentile.loc[cid]
        rows = []
        for col, info in self._attribute_meta:
            raw = row[col]
            if info.kind == "date" and not pd.isna(raw):
                raw = str(pd.Timestamp(raw).date())
            rows.append((info.category, *CATEGORIES.get(info.category, (info.category, info.category)), col,
                         info.zh if lang == "zh" else info.en, format_value(raw, info, lang), raw,
                         float(pct[col]) if col in pct.index and not pd.isna(pct[col]) else np.nan))
        out = pd.DataFrame(rows, columns=cols)
        order = {k: i for i, k in enumerate(CATEGORIES)}
        out["raw"] = out["raw"].astype(object)
        return out.sort_values("category", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)

    def _flow_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per transaction: month slot 0–11 in the card's 12 months (-1 outside), inflow, outflow."""
        txns = self.transactions
        if txns is None or not len(txns):
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
        signed = pd.to_numeric(txns["amount"], errors="coerce").fillna(0.0)
        direction = txns["direction"] if "direction" in txns.columns else pd.Series("", index=txns.index)
        is_in = _is_in(direction, signed)
        amount = signed.abs().to_numpy()
        time = txns["txn_time"]
        first = self._months[0]
        slot = ((time.dt.year - first.year) * 12 + time.dt.month - first.month).to_numpy(dtype=float, na_value=-1)
        slot = np.where((slot >= 0) & (slot < 12), slot, -1).astype(np.int64)
        return slot, np.where(is_in, amount, 0.0), np.where(is_in, 0.0, amount)

    def _login_slots(self) -> np.ndarray:
        """Per behaviour event: weekday·24 + hour for logins, -1 for anything else."""
        b = self.behaviors
        if b is None or not len(b):
            return np.zeros(0, np.int64)
        login = b["event_type"].astype("str").str.strip().str.lower().isin(LOGIN_VALUES) & b["event_time"].notna()
        slot = (b["event_time"].dt.day_of_week * 24 + b["event_time"].dt.hour).to_numpy(dtype=float, na_value=-1)
        return np.where(login.to_numpy(), slot, -1).astype(np.int64)

    def _monthly_flows(self, cid: str) -> pd.DataFrame:
        rows = self._txn_rows.get(cid, np.zeros(0, np.int64))
        slot = self._txn_month[rows]
        keep = slot >= 0
        inflow = np.bincount(slot[keep], weights=self._txn_in[rows][keep], minlength=12)
        outflow = np.bincount(slot[keep], weights=self._txn_out[rows][keep], minlength=12)
        return pd.DataFrame({"month": self._months.astype("str"), "inflow": inflow, "outflow": outflow})

    def _login_heatmap(self, cid: str) -> pd.DataFrame:
        slot = self._login_slot[self._beh_rows.get(cid, np.zeros(0, np.int64))]
        counts = np.bincount(slot[slot >= 0], minlength=7 * 24).reshape(7, 24)
        return pd.DataFrame(counts, index=pd.RangeIndex(7, name="weekday"), columns=pd.RangeIndex(24, name="hour"))

    def _recent(self, cid: str, n: int = 10) -> pd.DataFrame:
        rows = self._txn_rows.get(cid)
        if rows is None or self.transactions is None:
            return pd.DataFrame(columns=RECENT_COLUMNS)
        rows = rows[np.argsort(-self._txn_ns[rows], kind="stable")[:n]]
        out = self.transactions.iloc[rows][self._recent_columns].reset_index(drop=True)
        if "counterparty" in out.columns:
            out["counterparty"] = out["counterparty"].map(mask_counterparty).astype("str")
        return out

    def _reasons(self, cid: str, lang: str, top: int) -> dict[str, ReasonCodes]:
        expl = self.explanation
        if (expl is None or cid not in expl.customer_ids) and self.explainer is not None \
                and self._inputs is not None and cid in self._row_of:
            one = self.explainer.explain_inputs(self._inputs[[self._row_of[cid]]], [cid])
            expl = to_attributes(one, self.explainer.preprocessor, self.features.loc[[cid]])
        if expl is None or cid not in expl.customer_ids:
            return {}
        raw = self.features.loc[[cid]].reset_index(drop=True)
        return {task: reason_codes(expl, raw, cid, task, lang=lang, top=top, population=self.features)
                for task in expl.values}

    def _warnings(self, out: CardOutputs, has_events: bool, lang: str) -> list[CardWarning]:
        found: list[tuple[str, dict[str, Any]]] = []
        worse = GRADES[-2:]
        if out.credit_score_percentile is not None and out.pd_grade in worse \
                and out.credit_score_percentile >= 100 * (1 - TOP_SHARE):
            found.append(("profile.warn.score_vs_pd", {"top": round(100 * TOP_SHARE), "grade": out.pd_grade,
                                                       "pd": f"{100 * (out.pd or 0):.1f}%"}))
        if out.risk_level in GRADES and out.pd_grade in GRADES \
                and abs(GRADES.index(out.risk_level) - GRADES.index(out.pd_grade)) >= GRADE_GAP:
            found.append(("profile.warn.level_vs_pd", {"level": out.risk_level, "grade": out.pd_grade,
                                                       "pd": f"{100 * (out.pd or 0):.1f}%"}))
        if not has_events and (self.transactions is not None or self.behaviors is not None):
            found.append(("profile.warn.no_events", {}))
        return [CardWarning(key, t(key, lang, **values)) for key, values in found]

    # -- the card ----------------------------------------------------------------------------------------

    def tags(self, customer_id: str) -> list[Tag]:
        """The card's tags of one customer (none for a customer without tag inputs)."""
        cid = str(customer_id)
        return _tags(self._tag_inputs.loc[cid]) if cid in self._tag_inputs.index else []

    def all_tags(self) -> dict[str, list[Tag]]:
        """Every customer's tags, for portfolio-wide search and filters."""
        return {str(cid): _tags(inputs) for cid, inputs in self._tag_inputs.iterrows()}

    def card(self, customer_id: str, *, policy: Policy, lang: str = "zh", top_reasons: int = 4) -> ProfileCard:
        """The card of ``customer_id`` as ``policy`` may see it (``privacy.AccessDenied`` otherwise)."""
        cid = str(customer_id)
        if cid not in self.customers.index:
            raise KeyError(t("profile.unknown_customer", "en", customer=cid))
        row = self.customers.loc[cid]
        policy.check(row)
        outputs = self._outputs(cid, lang)
        has_events = cid in self._txn_rows or cid in self._beh_rows
        tags = self.tags(cid)
        reasons = self._reasons(cid, lang, top_reasons)
        self._marketing(outputs, reasons, lang)
        return ProfileCard(
            customer_id=cid, lang=lang, identity=self._identity(row, policy), outputs=outputs,
            attributes=self._attributes(cid, lang), tags=tags, monthly_flows=self._monthly_flows(cid),
            login_heatmap=self._login_heatmap(cid), recent_transactions=self._recent(cid),
            reasons=reasons, warnings=self._warnings(outputs, has_events, lang),
            as_of=str(self.as_of.date()), notice=t("app.notice", lang),
            has_transactions=self.transactions is not None, has_behaviors=self.behaviors is not None)


def _card_tasks(tasks: list[TaskSpec] | None, explainer: HeadExplainer | None,
                predictions: pd.DataFrame | None) -> list[TaskSpec]:
    """The model's tasks: as given, else the explainer's, else the reference design's tasks whose columns
    the predictions hold (predictions made elsewhere)."""
    if tasks is not None:
        return list(tasks)
    if explainer is not None:
        return list(explainer.tasks.values())
    cols = set() if predictions is None else set(predictions.columns)
    return [t_ for t_ in default_tasks() if f"{t_.name}_pred" in cols or f"{t_.name}_prob" in cols]


def _unit(task: TaskSpec, lang: str) -> str:
    info = feature_info(task.label)
    return info.unit_zh if lang == "zh" else info.unit_en


def build_profile_card(customer_id: str, *, tables: Mapping[str, pd.DataFrame], features: pd.DataFrame,
                       predictions: pd.DataFrame | None, explanation: Explanation | None = None,
                       policy: Policy, lang: str = "zh") -> ProfileCard:
    """One card, building the portfolio context on the way; for many cards build a ``CardContext`` once."""
    return CardContext(tables, features, predictions, explanation=explanation).card(customer_id, policy=policy,
                                                                                   lang=lang)

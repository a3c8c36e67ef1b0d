"""Default of Credit Card Clients (Taiwan, 2005; UCI id 350, Yeh & Lien 2009) as a three-task customer table.

Tasks (each head never sees its own label or the label's source column):

- ``credit_limit`` — regression on ``credit_limit_log`` = ln(LIMIT_BAL); LIMIT_BAL (``credit_limit``) and
  everything derived from it (``utilisation_m1``) are display-only, never features;
- ``default`` — binary ``default_flag`` (default payment next month);
- ``repay_risk`` — ordered 4-class ``repay_risk`` from PAY_0 (this month's repayment status): ≤0 (paid duly /
  no consumption), 1, 2, ≥3 months of delay. PAY_0 is not in the frame at all.

An extra, optional task for benchmarks: ``limit_band`` — the credit limit in 5 quantile bands (``LIMIT_BANDS``,
cut on the whole file), a band of a numeric target as users often ask for it (``LIMIT_BAND_TASK``; not in
``TASKS``).

Months: ``_m1`` is September 2005 (the latest: BILL_AMT1, PAY_AMT1), ``_m6`` April 2005; ``pay_status_m2`` is
PAY_2 (August) … ``pay_status_m6`` is PAY_6 (April).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from profile_core.datasets.base import DatasetBundle, check_columns, resolve
from profile_core.i18n import t
from profile_core.tasks import TaskSpec

NAME = "taiwan"
RELATIVE = "taiwan_default/UCI_Credit_Card.csv"
SAMPLE = "taiwan_sample.csv"
LABEL_RAW = "default.payment.next.month"
RAW_COLUMNS = ["ID", "LIMIT_BAL", "SEX", "EDUCATION", "MARRIAGE", "AGE", "PAY_0", "PAY_2", "PAY_3", "PAY_4",
               "PAY_5", "PAY_6", *[f"BILL_AMT{i}" for i in range(1, 7)], *[f"PAY_AMT{i}" for i in range(1, 7)],
               LABEL_RAW]
SOURCE = ("Default of Credit Card Clients, Taiwan 2005 — UCI Machine Learning Repository id 350 "
          "(Yeh, I.-C. & Lien, C.-h., 2009, Expert Systems with Applications 36(2)). 30,000 clients, "
          "amounts in NT dollars.")
LICENCE = "CC BY 4.0"

GENDER = {1: "男", 2: "女"}
EDUCATION = {1: "研究生", 2: "大学", 3: "高中"}  # 4 = others; 0, 5, 6 = unknown → 其他
MARRIAGE = {1: "已婚", 2: "单身"}  # 3 = others; 0 = unknown → 其他
OTHER = "其他"
RISK_CLASSES = ("≤0", "1", "2", "≥3")  # months of delay this month, grouped; index = class

MONTHS = range(1, 7)
PAY_STATUS = [f"pay_status_m{i}" for i in range(2, 7)]
BILLS = [f"bill_amt_m{i}" for i in MONTHS]
PAYS = [f"pay_amt_m{i}" for i in MONTHS]
AMOUNTS = [*BILLS, *PAYS, "avg_bill", "avg_payment"]
#: the nets see amounts on a signed log scale (sign·ln(1+|x|)): NT$ amounts are heavy-tailed, and on the raw
#: scale the nets lose ~0.03 macro-F1/QWK on the risk class (LightGBM is indifferent); raw amounts stay in the
#: frame for display.
LOG_AMOUNTS = [f"{c}_log" for c in AMOUNTS]
DERIVED = ["months_delayed", "max_delay", "payment_ratio", "bill_growth"]
NUMERIC = ["age", *PAY_STATUS, *LOG_AMOUNTS, *DERIVED]
CATEGORICAL = ["gender", "education", "marital_status"]
DISPLAY_ONLY = ["credit_limit", "utilisation_m1", "limit_band"]  # reveal the credit-limit label
LABELS = ["credit_limit_log", "default_flag", "repay_risk", "limit_band"]
LIMIT_BANDS = ("B1", "B2", "B3", "B4", "B5")  # quintiles of LIMIT_BAL, lowest first

_MONTH_ZH = {1: "9月", 2: "8月", 3: "7月", 4: "6月", 5: "5月", 6: "4月"}
_MONTH_EN = {1: "Sep", 2: "Aug", 3: "Jul", 4: "Jun", 5: "May", 6: "Apr"}

COLUMNS: dict[str, tuple[str, str, str]] = {
    "customer_id": ("客户ID", "Customer ID", "basic"),
    "gender": ("性别", "Gender", "basic"),
    "education": ("学历", "Education", "basic"),
    "marital_status": ("婚姻状况", "Marital status", "basic"),
    "age": ("年龄", "Age", "basic"),
    "credit_limit": ("授信额度", "Credit limit", "credit"),
    "utilisation_m1": ("额度使用率(9月)", "Utilisation (Sep)", "credit"),
    **{f"pay_status_m{i}": (f"还款状态({_MONTH_ZH[i]})", f"Repayment status ({_MONTH_EN[i]})", "credit")
       for i in range(2, 7)},
    **{f"bill_amt_m{i}": (f"账单金额({_MONTH_ZH[i]})", f"Bill amount ({_MONTH_EN[i]})", "transaction")
       for i in MONTHS},
    **{f"pay_amt_m{i}": (f"还款金额({_MONTH_ZH[i]})", f"Payment amount ({_MONTH_EN[i]})", "transaction")
       for i in MONTHS},
    "months_delayed": ("近5月逾期月数(4–8月)", "Months delayed (Apr–Aug)", "credit"),
    "max_delay": ("近5月最长逾期(月)", "Longest delay Apr–Aug (months)", "credit"),
    "avg_bill": ("月均账单金额", "Average monthly bill", "transaction"),
    "avg_payment": ("月均还款金额", "Average monthly payment", "transaction"),
    **{f"bill_amt_m{i}_log": (f"账单金额({_MONTH_ZH[i]}, 对数)", f"Bill amount ({_MONTH_EN[i]}, log)", "transaction")
       for i in MONTHS},
    **{f"pay_amt_m{i}_log": (f"还款金额({_MONTH_ZH[i]}, 对数)", f"Payment amount ({_MONTH_EN[i]}, log)",
                             "transaction") for i in MONTHS},
    "avg_bill_log": ("月均账单金额(对数)", "Average monthly bill (log)", "transaction"),
    "avg_payment_log": ("月均还款金额(对数)", "Average monthly payment (log)", "transaction"),
    "payment_ratio": ("还款/账单比", "Payments / bills", "behavior"),
    "bill_growth": ("账单增幅(4月→9月)", "Bill growth (Apr→Sep)", "behavior"),
    "credit_limit_log": ("授信额度(对数)", "Credit limit (log)", "credit"),
    "default_flag": ("下月违约", "Default next month", "credit"),
    "repay_risk": ("本月还款风险等级", "Repayment risk class (this month)", "credit"),
    "limit_band": ("授信额度分档(五分位)", "Credit-limit band (quintiles)", "credit"),
}

TASKS = [
    TaskSpec("credit_limit", "credit_limit_log", "regression", zh="授信额度(对数)", en="Credit limit (log)"),
    TaskSpec("default", "default_flag", "binary", zh="违约概率", en="Default probability"),
    TaskSpec("repay_risk", "repay_risk", "multiclass", classes=RISK_CLASSES, ordered=True,
             zh="还款风险等级", en="Repayment risk class"),
]

LIMIT_BAND_TASK = TaskSpec("limit_band", "limit_band", "multiclass", classes=LIMIT_BANDS, ordered=True,
                           zh="授信额度分档", en="Credit-limit band")


def limit_band(limit: pd.Series) -> pd.Series:
    """Credit limit → quintile band label B1 (lowest) … B5; ties fall in the lower band."""
    edges = np.quantile(limit.to_numpy(float), np.linspace(0, 1, len(LIMIT_BANDS) + 1)[1:-1])
    code = np.searchsorted(edges, limit.to_numpy(float), side="left")
    return pd.Series(np.asarray(LIMIT_BANDS, dtype=object)[code], index=limit.index, dtype="str")


def risk_class(pay_0: pd.Series) -> pd.Series:
    """PAY_0 → ordered risk class label: ≤0 → "≤0", 1 → "1", 2 → "2", ≥3 → "≥3"."""
    code = np.clip(pd.to_numeric(pay_0).to_numpy(np.int64), 0, 3)
    return pd.Series(np.asarray(RISK_CLASSES, dtype=object)[code], index=pay_0.index, dtype="str")


def signed_log(x: np.ndarray) -> np.ndarray:
    """sign(x)·ln(1+|x|): a log scale for amounts that may be negative (credit balances)."""
    return np.sign(x) * np.log1p(np.abs(x))


def read_raw(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path)
    check_columns(raw, RAW_COLUMNS, path)
    return raw


def build_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """UCI columns → the readable customer table (features, display-only columns, labels)."""
    num = {c: pd.to_numeric(raw[c]).astype(np.float64) for c in RAW_COLUMNS if c != "ID"}
    f = pd.DataFrame(index=raw.index)
    f["customer_id"] = pd.Series([f"TW{int(i):05d}" for i in raw["ID"]], index=raw.index, dtype="str")
    f["gender"] = raw["SEX"].map(GENDER).fillna(OTHER).astype("str")
    f["education"] = raw["EDUCATION"].map(EDUCATION).fillna(OTHER).astype("str")
    f["marital_status"] = raw["MARRIAGE"].map(MARRIAGE).fillna(OTHER).astype("str")
    f["age"] = num["AGE"]
    for i in range(2, 7):
        f[f"pay_status_m{i}"] = num[f"PAY_{i}"]
    for i in MONTHS:
        f[f"bill_amt_m{i}"] = num[f"BILL_AMT{i}"]
    for i in MONTHS:
        f[f"pay_amt_m{i}"] = num[f"PAY_AMT{i}"]
    status = f[PAY_STATUS].to_numpy()
    f["months_delayed"] = (status > 0).sum(axis=1).astype(np.float64)
    f["max_delay"] = np.clip(status.max(axis=1), 0, None)
    bills, pays = f[BILLS].to_numpy(), f[PAYS].to_numpy()
    f["avg_bill"] = bills.mean(axis=1)
    f["avg_payment"] = pays.mean(axis=1)
    owed = np.clip(bills, 0, None).sum(axis=1)
    f["payment_ratio"] = np.clip(pays.sum(axis=1) / np.maximum(owed, 1.0), 0.0, 10.0)
    f["bill_growth"] = np.clip((bills[:, 0] - bills[:, 5]) / np.maximum(np.abs(bills[:, 5]), 1000.0), -10, 10)
    for c in AMOUNTS:
        f[f"{c}_log"] = signed_log(f[c].to_numpy())
    # display-only: these reveal the credit-limit label
    f["credit_limit"] = num["LIMIT_BAL"]
    f["utilisation_m1"] = num["BILL_AMT1"] / num["LIMIT_BAL"]
    # labels
    f["credit_limit_log"] = np.log(num["LIMIT_BAL"])
    f["default_flag"] = num[LABEL_RAW].astype(np.int64)
    f["repay_risk"] = risk_class(raw["PAY_0"])
    f["limit_band"] = limit_band(num["LIMIT_BAL"])
    return f.reset_index(drop=True)


def load_taiwan(path: str | Path | None = None) -> DatasetBundle:
    """The Taiwan credit-card table: ``path``, else ../shared/datasets/taiwan_default/UCI_Credit_Card.csv,
    else the 2,000-row sample shipped in ``profile_core/samples``."""
    file, is_sample = resolve(path, RELATIVE, SAMPLE)
    frame = build_frame(read_raw(file))
    return DatasetBundle(
        name=NAME, zh=t("datasets.taiwan.title", "zh"), en=t("datasets.taiwan.title", "en"), frame=frame,
        tasks=list(TASKS), numeric=list(NUMERIC), categorical=list(CATEGORICAL), columns=dict(COLUMNS),
        source=SOURCE, licence=LICENCE, path=str(file), is_sample=is_sample, display_only=list(DISPLAY_ONLY),
        stratify="default_flag",
    )

"""The canonical data schema: four tables (customers 1:N transactions, behaviors, credit_records) and the
flat one-row-per-customer form, with English and Chinese column aliases and display names.

Everything downstream speaks the canonical English column names defined here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["id", "text", "category", "int", "float", "datetime", "date", "flag"]

#: The four attribute categories of the panorama card, in display order (key → zh / en).
CATEGORIES: dict[str, tuple[str, str]] = {
    "basic": ("基本信息", "Basic information"),
    "transaction": ("交易数据", "Transactions"),
    "behavior": ("行为数据", "Behaviour"),
    "credit": ("信用评分", "Credit"),
}


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    zh: str
    en: str
    required: bool = False
    aliases: tuple[str, ...] = ()
    personal: bool = False  # direct identifier: masked in the UI, never a feature, never logged
    label: bool = False  # a target a model can learn
    values: tuple[str, ...] = ()  # allowed values for small categories (empty: any)


@dataclass(frozen=True)
class Table:
    name: str
    zh: str
    en: str
    columns: tuple[Column, ...]
    category: str  # attribute category of features derived from this table
    time_column: str | None = None
    aliases: tuple[str, ...] = field(default=())

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]


CUSTOMER_ID = Column("customer_id", "id", "客户ID", "Customer ID", True,
                     ("客户id", "客户编号", "顾客ID", "客户号", "客户代码", "cust_id", "customerid", "client_id", "id",
                      "customer_no", "customer_number", "cust_no", "client_no", "client_number"))

CUSTOMERS = Table("customers", "客户", "Customers", (
    CUSTOMER_ID,
    Column("name", "text", "姓名", "Name", aliases=("客户姓名", "客户名称", "full_name"), personal=True),
    Column("id_number", "text", "证件号码", "ID number", aliases=("身份证号", "身份证号码", "证件号", "id_no"),
           personal=True),
    Column("phone", "text", "手机号", "Phone", aliases=("手机号码", "电话", "联系电话", "mobile"), personal=True),
    Column("gender", "category", "性别", "Gender", aliases=("sex", "性別")),
    Column("age", "int", "年龄", "Age"),
    Column("occupation", "category", "职业", "Occupation", aliases=("job",)),
    Column("education", "category", "学历", "Education", aliases=("教育程度",)),
    Column("marital_status", "category", "婚姻状况", "Marital status", aliases=("婚姻", "marriage")),
    Column("city", "category", "城市", "City", aliases=("所在城市",)),
    Column("income", "float", "年收入", "Annual income", aliases=("收入", "annual_income")),
    Column("open_date", "date", "开户日期", "Account opened", aliases=("开户时间", "open_time")),
    Column("rm_id", "category", "客户经理", "Relationship manager", aliases=("客户经理ID", "客户经理编号", "rm")),
    # marketing outcomes over the three months after the observation date (one per customer): labels, never inputs
    Column("wm_purchase_3m", "flag", "三个月内购买理财", "Buys wealth management within 3 months",
           aliases=("购买理财", "理财购买", "是否购买理财", "wm_purchase", "wealth_purchase", "wealth_purchase_3m"),
           label=True),
    Column("churn_3m", "flag", "三个月内流失", "Churns within 3 months",
           aliases=("流失", "是否流失", "客户流失", "churn", "churn_flag", "churned", "attrition"), label=True),
), category="basic", aliases=("客户", "客户信息", "customer"))

TRANSACTIONS = Table("transactions", "交易", "Transactions", (
    CUSTOMER_ID,
    Column("txn_time", "datetime", "交易时间", "Transaction time", True,
           ("交易日期", "time", "txn_date", "date", "记账日期", "交易日", "txn_dt", "trans_date", "booking_date",
            "posting_date", "value_date")),
    Column("amount", "float", "交易金额", "Amount", True,
           ("金额", "amt", "发生额", "交易额", "txn_amount", "transaction_amount", "trans_amount")),
    Column("direction", "category", "收支", "Direction", aliases=("收支方向", "借贷", "借贷标志", "in_out", "debit_credit", "dc_flag"),
           values=("in", "out")),
    Column("channel", "category", "渠道", "Channel", aliases=("交易渠道",)),
    Column("category", "category", "类别", "Category", aliases=("交易类别", "交易类型", "type")),
    Column("location", "category", "交易地点", "Location", aliases=("地点",)),
    Column("counterparty", "text", "交易对手", "Counterparty", aliases=("对手方", "对方户名"), personal=True),
), category="transaction", time_column="txn_time", aliases=("交易", "交易数据", "transaction", "txn"))

BEHAVIORS = Table("behaviors", "行为", "Behaviours", (
    CUSTOMER_ID,
    Column("event_time", "datetime", "时间", "Event time", True, ("行为时间", "登录时间", "time", "timestamp")),
    Column("event_type", "category", "行为类型", "Event type", True, ("事件类型", "type", "action")),
    Column("page", "category", "页面", "Page"),
    Column("product", "category", "产品", "Product", aliases=("浏览产品",)),
    Column("device", "category", "设备", "Device", aliases=("终端",)),
), category="behavior", time_column="event_time", aliases=("行为", "行为数据", "behavior", "behaviour", "events"))

CREDIT_RECORDS = Table("credit_records", "信用记录", "Credit records", (
    CUSTOMER_ID,
    Column("as_of", "date", "日期", "As of", True, ("统计日期", "报告日期", "月份", "month", "date")),
    Column("credit_score", "float", "信用评分", "Credit score", aliases=("评分", "score"), label=True),
    Column("default_flag", "flag", "违约", "Default", aliases=("是否违约", "违约标志", "default"), label=True),
    Column("risk_level", "category", "风险等级", "Risk level", aliases=("风险评级", "risk_grade"), label=True),
    Column("dpd", "int", "逾期天数", "Days past due", aliases=("逾期", "days_past_due")),
    Column("credit_limit", "float", "额度", "Credit limit", aliases=("授信额度", "信用额度", "limit")),
    Column("balance", "float", "欠款余额", "Balance", aliases=("余额", "已用额度", "outstanding")),
    Column("loan_count", "int", "贷款笔数", "Loans", aliases=("贷款数",)),
    Column("inquiries", "int", "查询次数", "Credit inquiries", aliases=("征信查询次数",)),
), category="credit", time_column="as_of", aliases=("信用", "信用记录", "征信", "credit"))

#: Account → customer links (not a stored table): one customer may hold many accounts, one account may have
#: several holders, each with a role. Events keyed by ``account_id`` are resolved to customers through it.
ACCOUNT_ID = Column("account_id", "id", "账户ID", "Account ID", True,
                    ("账号", "账户", "账户号", "账户编号", "卡号", "account", "account_id", "account_no",
                     "account_number", "acct", "acct_id", "acct_no", "acc_id", "iban"))
HOLDER_ROLE = Column("holder_role", "category", "持有人角色", "Holder role",
                     aliases=("角色", "持有人类型", "关系", "role", "holder_type", "relation", "disposition", "type"))
ACCOUNT_LINKS = Table("account_links", "账户关联", "Account links", (ACCOUNT_ID, CUSTOMER_ID, HOLDER_ROLE),
                      category="basic", aliases=("账户关联", "账户客户关系", "accounts", "account_links", "links",
                                                 "disp", "holders"))
#: Holder-role words → canonical role (compared lower-case). Events go to the ``owner`` by default.
HOLDER_ROLES = {"owner": "owner", "持有人": "owner", "户主": "owner", "主": "owner", "本人": "owner",
                "primary": "owner", "main": "owner", "holder": "owner", "主账户人": "owner",
                "disponent": "disponent", "user": "disponent", "授权人": "disponent", "代理人": "disponent",
                "附属": "disponent", "secondary": "disponent", "authorised": "disponent", "authorized": "disponent"}

TABLES: dict[str, Table] = {t.name: t for t in (CUSTOMERS, TRANSACTIONS, BEHAVIORS, CREDIT_RECORDS)}
EVENT_TABLES = ("transactions", "behaviors", "credit_records")

#: Canonical label columns: the credit ones (from the latest credit record) and the marketing outcomes (customers).
LABELS: dict[str, Column] = {
    "credit_score": CREDIT_RECORDS.column("credit_score"),
    "default_flag": CREDIT_RECORDS.column("default_flag"),
    "risk_level": CREDIT_RECORDS.column("risk_level"),
    "wm_purchase_3m": CUSTOMERS.column("wm_purchase_3m"),
    "churn_3m": CUSTOMERS.column("churn_3m"),
}
#: Canonical labels carried by the customers table (outcomes per customer); the others come from the latest
#: credit record.
CUSTOMER_LABELS = ("wm_purchase_3m", "churn_3m")
#: Task kind of each canonical label.
LABEL_TASK_KINDS: dict[str, str] = {"credit_score": "regression", "default_flag": "binary", "risk_level": "multiclass",
                                    "wm_purchase_3m": "binary", "churn_3m": "binary"}

RISK_LEVELS = ("A", "B", "C", "D", "E")  # A = lowest risk
DIRECTION_VALUES = {"in": "in", "out": "out", "收入": "in", "支出": "out", "入": "in", "出": "out",
                    "credit": "in", "debit": "out", "贷": "in", "借": "out", "+": "in", "-": "out",
                    "c": "in", "d": "out", "cr": "in", "dr": "out", "inflow": "in", "outflow": "out",
                    "prijem": "in", "příjem": "in", "vydaj": "out", "výdaj": "out", "haben": "in", "soll": "out"}
GENDER_VALUES = {"男": "男", "女": "女", "m": "男", "f": "女", "male": "男", "female": "女", "1": "男", "2": "女"}


def normalize_header(text: str) -> str:
    """Header comparison form: trimmed, lower-case, spaces/dashes/dots as underscores, BOM dropped."""
    text = str(text).replace("\ufeff", "").strip().lower()
    return re.sub(r"[\s\-.]+", "_", text)


def alias_map(table: Table) -> dict[str, str]:
    """Every accepted header (canonical, display names, aliases; normalised) → canonical column name."""
    out: dict[str, str] = {}
    for c in table.columns:
        for a in (c.name, c.zh, c.en, *c.aliases):
            out.setdefault(normalize_header(a), c.name)
    return out


def canonical_columns(table: Table, headers: list[str]) -> dict[str, str]:
    """Map the headers of an uploaded file to canonical names; unknown headers map to themselves."""
    amap = alias_map(table)
    return {h: amap.get(normalize_header(h), str(h).strip()) for h in headers}


def guess_table(headers: list[str], file_name: str = "") -> str | None:
    """Which canonical table a file holds: by file name first, then by the best header overlap."""
    stem = normalize_header(file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0]) if file_name else ""
    for t in TABLES.values():
        if stem and stem in {normalize_header(a) for a in (t.name, t.zh, t.en, *t.aliases)}:
            return t.name
    best, best_score = None, 0.0
    for t in TABLES.values():
        mapped = set(canonical_columns(t, headers).values()) & {c.name for c in t.columns}
        missing = set(t.required) - mapped
        score = len(mapped - {"customer_id"}) - 2 * len(missing)
        if score > best_score:
            best, best_score = t.name, score
    return best


def display_name(column: str, lang: str = "zh") -> str:
    """Human-readable name of a canonical column in ``lang`` (falls back to the column name)."""
    for t in TABLES.values():
        for c in t.columns:
            if c.name == column:
                return c.zh if lang == "zh" else c.en
    return column


def personal_columns() -> set[str]:
    return {c.name for t in TABLES.values() for c in t.columns if c.personal}

"""Seeded synthetic demo portfolio: Chinese retail-bank customers, their events and the latent truth.

A hidden risk factor ``z`` and an affluence factor ``a`` per customer drive both what the bank observes
(utilisation, late payments, credit inquiries, night-time activity, cash withdrawals, irregular income,
spending relative to income, loan-product browsing) and the three risk labels (credit_score, default_flag,
risk_level), so the labels are learnable, noisy and correlated across tasks.

Two marketing outcomes over the three months after ``end`` sit on the customers table: ``wm_purchase_3m`` (buys a
wealth-management product) and ``churn_3m`` (leaves the bank). An investment interest ``w`` (partly affluence)
drives browsing of 理财/基金 products, and a disengagement factor ``d`` (partly risk, less for the affluent)
drives fading logins and spending in the last months, salary arriving less often and transfers to the customer's
accounts at other banks. Purchase depends on ``w``, affluence, a regular salary, low risk and staying; churn on
``d`` and on holding few products — learnable from the events, sharing affluence and risk with the credit side.
The marketing side draws from its own random stream, so the risk side's draws are unchanged by it.

Everything is vectorised numpy drawn from one ``np.random.default_rng(seed)`` in a fixed order: the same
arguments give identical frames and identical files. Python loops run only over months and small
category lists, never over rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from profile_core.schema import RISK_LEVELS, TABLES

# --- reference lists -------------------------------------------------------------------------------

SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈")
MALE_CHARS = list("伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆旭宁龙阳建国志文晨博轩子豪诚")
FEMALE_CHARS = list("芳娜敏静丽艳娟霞燕玲婷雪慧颖琳倩萍红梅洁欣怡悦佳璐晶瑶丹莉蕾雯思雨诗梦月晓琪妍")

# city: (weight, income multiplier, 身份证 region code of a central district)
CITIES: dict[str, tuple[float, float, str]] = {
    "北京": (0.11, 1.45, "110105"), "上海": (0.11, 1.50, "310115"), "广州": (0.09, 1.25, "440106"),
    "深圳": (0.09, 1.40, "440305"), "杭州": (0.08, 1.25, "330106"), "成都": (0.08, 1.00, "510107"),
    "武汉": (0.07, 1.00, "420106"), "南京": (0.07, 1.15, "320102"), "西安": (0.06, 0.90, "610113"),
    "重庆": (0.07, 0.90, "500103"), "天津": (0.05, 1.05, "120101"), "苏州": (0.05, 1.15, "320505"),
    "长沙": (0.04, 0.95, "430104"), "郑州": (0.03, 0.90, "410105"),
}

# occupation: (weight, median annual income CNY, log-sd of income, risk shift, income kind)
OCCUPATIONS: dict[str, tuple[float, float, float, float, str]] = {
    "公务员": (0.07, 140_000, 0.25, -0.35, "salary"),
    "教师": (0.08, 120_000, 0.25, -0.25, "salary"),
    "医生": (0.05, 190_000, 0.35, -0.25, "salary"),
    "工程师": (0.12, 230_000, 0.40, -0.10, "salary"),
    "企业职员": (0.18, 110_000, 0.35, 0.00, "salary"),
    "销售": (0.10, 120_000, 0.55, 0.20, "salary"),
    "工人": (0.11, 75_000, 0.30, 0.15, "salary"),
    "个体户": (0.10, 160_000, 0.70, 0.25, "business"),
    "自由职业": (0.08, 110_000, 0.65, 0.35, "freelance"),
    "学生": (0.04, 24_000, 0.35, 0.30, "allowance"),
    "退休": (0.07, 60_000, 0.30, -0.30, "pension"),
}
EDUCATION = ["高中及以下", "大专", "本科", "硕士", "博士"]
EDU_PROBS: dict[str, list[float]] = {
    "医生": [0, 0.05, 0.45, 0.35, 0.15], "工程师": [0, 0.10, 0.60, 0.25, 0.05],
    "公务员": [0.02, 0.15, 0.63, 0.18, 0.02], "教师": [0.02, 0.15, 0.63, 0.18, 0.02],
    "企业职员": [0.08, 0.35, 0.50, 0.07, 0], "销售": [0.15, 0.40, 0.42, 0.03, 0],
    "工人": [0.55, 0.30, 0.15, 0, 0], "个体户": [0.50, 0.30, 0.18, 0.02, 0],
    "自由职业": [0.20, 0.35, 0.40, 0.05, 0], "学生": [0, 0.10, 0.60, 0.27, 0.03],
    "退休": [0.45, 0.25, 0.25, 0.05, 0],
}
MARITAL = ["未婚", "已婚", "离异", "丧偶"]

# how the monthly income arrives: category, monthly log-sd, channel probabilities over CHANNELS
INCOME_KINDS: dict[str, tuple[str, float, list[float]]] = {
    "salary": ("工资", 0.06, [0, 1, 0, 0, 0, 0]),
    "pension": ("养老金", 0.02, [0, 1, 0, 0, 0, 0]),
    "business": ("经营收入", 0.45, [0.30, 0.20, 0.10, 0, 0, 0.40]),
    "freelance": ("劳务报酬", 0.55, [0.40, 0.30, 0, 0, 0, 0.30]),
    "allowance": ("转账", 0.15, [0.70, 0.10, 0, 0, 0, 0.20]),
}
CHANNELS = ["手机银行", "网上银行", "柜面", "ATM", "POS", "第三方支付"]

# spending category: (base probability, typical amount CNY, merchants)
SPEND: dict[str, tuple[float, float, list[str]]] = {
    "餐饮": (0.33, 60, ["海底捞", "肯德基", "麦当劳", "星巴克", "美团外卖", "饿了么", "西贝莜面村", "瑞幸咖啡"]),
    "购物": (0.20, 280, ["京东商城", "淘宝", "天猫超市", "拼多多", "永辉超市", "盒马鲜生", "沃尔玛", "优衣库"]),
    "交通": (0.14, 35, ["滴滴出行", "中国石化", "中国石油", "铁路12306", "地铁票务", "高德打车"]),
    "娱乐": (0.08, 150, ["万达影城", "猫眼电影", "腾讯游戏", "网易游戏", "好乐迪KTV", "抖音直播"]),
    "医疗": (0.04, 260, ["市第一人民医院", "老百姓大药房", "益丰大药房", "爱尔眼科"]),
    "教育": (0.03, 900, ["新东方", "学而思", "高途课堂", "得到"]),
    "旅游": (0.02, 1500, ["携程旅行", "去哪儿", "飞猪", "中国国际航空", "华住酒店", "如家酒店"]),
    "生活缴费": (0.11, 180, ["国家电网", "自来水公司", "燃气公司", "物业管理中心"]),
    "通讯": (0.05, 90, ["中国移动", "中国联通", "中国电信"]),
}
LENDERS = ["本行信用卡中心", "本行个人贷款", "招联消费金融", "马上消费金融", "蚂蚁借呗", "微粒贷", "京东金条"]
FUNDS = ["本行理财", "易方达基金", "华夏基金", "南方基金", "招商基金"]
COMPANY_CORES = list("华信恒通天成中科远大新城宏达金桥蓝海瑞丰国泰东方明德鼎盛博雅")
INDUSTRIES = ["科技", "贸易", "建设", "医药", "物流", "电子", "信息技术", "食品", "咨询", "机械"]

EVENT_TYPES = ["login", "view", "click", "search", "transfer_page", "apply"]
EVENT_PAGES = {"login": ["登录页"], "view": ["产品详情"], "click": ["首页", "活动页", "产品列表"],
               "search": ["搜索"], "transfer_page": ["转账页"], "apply": ["申请页"]}
PRODUCTS = ["信用卡", "消费贷", "理财", "基金", "存款", "保险"]
DEVICES = ["iOS", "Android", "PC"]
# day-time hour profile (6h-23h) for transactions and app use; night hours 0-5 are drawn separately
DAY_HOURS = np.array([1, 3, 5, 6, 6, 6, 8, 7, 6, 6, 6, 6, 7, 9, 10, 9, 7, 4], float)
RISK_SHARES = (0.25, 0.30, 0.25, 0.13, 0.07)  # A..E
DEFAULT_RATE = 0.075
PURCHASE_RATE = 0.12  # buys a wealth-management product within three months
CHURN_RATE = 0.08  # leaves the bank within three months
COMPETITORS = ["招商银行", "建设银行", "工商银行", "平安银行", "微众银行"]  # transfers to own accounts elsewhere
WEALTH_PRODUCTS = ("理财", "基金")


@dataclass
class Portfolio:
    customers: pd.DataFrame
    transactions: pd.DataFrame
    behaviors: pd.DataFrame
    credit_records: pd.DataFrame
    truth: pd.DataFrame  # customer_id, latent factors, true probabilities and the exact label draws

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"customers": self.customers, "transactions": self.transactions,
                "behaviors": self.behaviors, "credit_records": self.credit_records}


# --- small vectorised helpers ------------------------------------------------------------------------

def _ids(index: np.ndarray, first_id: int = 1) -> np.ndarray:
    """Customer ids for 0-based customer indices: C000001, C000002, … (wider past a million)."""
    return np.char.add("C", np.char.zfill((index + first_id).astype(str), 6))


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, float)))


def _choice(rng: np.random.Generator, probs: list[float] | np.ndarray, size: int) -> np.ndarray:
    """Indices drawn from one probability vector (unnormalised is fine)."""
    cum = np.cumsum(np.asarray(probs, float))
    return np.minimum(np.searchsorted(cum / cum[-1], rng.random(size), side="right"), len(cum) - 1)


def _grouped_choice(rng: np.random.Generator, groups: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Per-row draw where row i uses ``probs[groups[i]]``; one vectorised draw per group."""
    out = np.zeros(len(groups), np.int64)
    for g in range(len(probs)):
        rows = np.flatnonzero(groups == g)
        out[rows] = _choice(rng, probs[g], len(rows))
    return out


def _strs(pool: list[str] | np.ndarray, idx: np.ndarray) -> pd.Series:
    """A ``str`` column from a small pool and row indices (index -1 gives a missing value)."""
    values = np.asarray([*pool, None], dtype=object)[np.where(idx < 0, len(pool), idx)]
    return pd.Series(values, dtype="str")


def _hours(rng: np.random.Generator, p_night: np.ndarray) -> np.ndarray:
    """Hour of day per row: 0-5 with probability ``p_night``, else from the day-time profile."""
    night = rng.random(len(p_night)) < p_night
    return np.where(night, rng.integers(0, 6, len(p_night)), 6 + _choice(rng, DAY_HOURS, len(p_night)))


def _names(rng: np.random.Generator, male: np.ndarray) -> np.ndarray:
    n = len(male)
    w = 1.0 / (np.arange(len(SURNAMES)) + 6.0)  # frequent surnames first
    sur = np.asarray(SURNAMES, object)[_choice(rng, w, n)]
    chars = [np.asarray(MALE_CHARS, object), np.asarray(FEMALE_CHARS, object)]
    first = np.where(male, chars[0][rng.integers(0, len(MALE_CHARS), n)],
                     chars[1][rng.integers(0, len(FEMALE_CHARS), n)])
    second = np.where(male, chars[0][rng.integers(0, len(MALE_CHARS), n)],
                      chars[1][rng.integers(0, len(FEMALE_CHARS), n)])
    two = rng.random(n) < 0.7
    return sur + first + np.where(two, second, "")


def _id_numbers(rng: np.random.Generator, region: np.ndarray, birth: pd.DatetimeIndex,
                male: np.ndarray) -> np.ndarray:
    """18-digit 身份证号 (GB 11643): region + birth date + sequence (odd = male) + check digit."""
    seq = rng.integers(0, 500, len(male)) * 2 + male.astype(int)  # 17th digit parity is the gender
    body = np.char.add(np.char.add(region.astype(str), birth.strftime("%Y%m%d").to_numpy(str)),
                       np.char.zfill(seq.astype(str), 3))
    digits = np.frombuffer(body.astype("S17").tobytes(), np.uint8).reshape(-1, 17) - ord("0")
    weights = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
    check = np.asarray(list("10X98765432"))[(digits @ weights) % 11]
    return np.char.add(body, check).astype(object)


def _phones(rng: np.random.Generator, n: int) -> np.ndarray:
    prefixes = np.array([130, 131, 132, 133, 135, 136, 137, 138, 139, 150, 151, 152, 155, 156, 157,
                         158, 159, 180, 181, 182, 183, 185, 186, 187, 188, 189], np.int64)
    number = prefixes[rng.integers(0, len(prefixes), n)] * 100_000_000 + rng.integers(0, 100_000_000, n)
    return number.astype(str).astype(object)


# --- the generator -------------------------------------------------------------------------------------

@dataclass
class _Calendar:
    end: pd.Timestamp
    starts: np.ndarray  # datetime64[D], first day of each month (oldest first)
    days: np.ndarray  # days available in each month (the last month stops at ``end``)
    as_of: np.ndarray  # datetime64[D], month-end dates (the last one is ``end``)


def _calendar(end: str, months: int) -> _Calendar:
    end_ts = pd.Timestamp(end).normalize()
    end_d = np.datetime64(end_ts.date(), "D")
    starts_m = np.datetime64(end_ts.date(), "M") - np.arange(months)[::-1]
    starts = starts_m.astype("datetime64[D]")
    month_end = (starts_m + 1).astype("datetime64[D]") - 1
    as_of = np.minimum(month_end, end_d)
    return _Calendar(end_ts, starts, (as_of - starts).astype(int) + 1, as_of)


def generate_portfolio(n_customers: int = 2000, seed: int = 7, months: int = 12,
                       end: str = "2026-10-31", first_id: int = 1) -> Portfolio:
    """A realistic synthetic portfolio: 4 canonical tables plus the latent truth behind the labels.

    Customer ids run ``C{first_id:06d}`` onwards, so slices generated with distinct seeds and consecutive
    ``first_id`` ranges form one larger portfolio (streamed generation)."""
    if n_customers < 1 or months < 1 or first_id < 1:
        raise ValueError("n_customers, months and first_id must be at least 1.")
    rng = np.random.default_rng(seed)
    cal = _calendar(end, months)
    cust, lat = _customers(rng, n_customers, cal)
    lat["first_id"] = first_id
    cust["customer_id"] = pd.Series(_ids(np.arange(n_customers), first_id), dtype="str")
    credit = _credit(rng, lat, cal)
    txns = _transactions(rng, lat, cal)
    behav = _behaviors(rng, lat, cal)
    # the marketing side draws from its own stream: the risk side's draws (and labels) are those of before
    mrng = np.random.default_rng([seed, 0x6D6B74])
    txns, behav, mk = _marketing(mrng, lat, cal, cust["customer_id"], txns, behav)
    cust["wm_purchase_3m"] = mk["purchase"].astype(np.int64)
    cust["churn_3m"] = mk["churn"].astype(np.int64)
    truth = pd.DataFrame({"customer_id": cust["customer_id"], "latent_risk": lat["z"],
                          "affluence": lat["a"], "pd_true": lat["pd"],
                          "credit_score": lat["score"], "default_flag": lat["default"].astype(np.int64),
                          "risk_level": _strs(list(RISK_LEVELS), lat["grade"]),
                          "interest": mk["w"], "disengagement": mk["d"], "purchase_true": mk["p_purchase"],
                          "churn_true": mk["p_churn"], "wm_purchase_3m": cust["wm_purchase_3m"],
                          "churn_3m": cust["churn_3m"]})
    assert list(cust.columns) == [c.name for c in TABLES["customers"].columns]
    return Portfolio(cust, txns, behav, credit, truth)


def _customers(rng: np.random.Generator, n: int, cal: _Calendar) -> tuple[pd.DataFrame, dict]:
    occ_names = list(OCCUPATIONS)
    occ_tab = list(OCCUPATIONS.values())
    occ = _choice(rng, [o[0] for o in occ_tab], n)
    male = rng.random(n) < 0.5
    # age by occupation: students 22-27, retired 55-70, the rest mostly 23-60
    age = np.rint(22 + 38 * rng.beta(2.0, 2.6, n)).astype(int)
    student, retired = occ == occ_names.index("学生"), occ == occ_names.index("退休")
    age = np.where(student, rng.integers(22, 28, n), age)
    age = np.where(retired, rng.integers(55, 71, n), age)

    city_names = list(CITIES)
    city = _choice(rng, [c[0] for c in CITIES.values()], n)
    edu = _grouped_choice(rng, occ, np.array([EDU_PROBS[o] for o in occ_names]))
    young, mid = age < 25, age < 36
    marital = np.where(young, _choice(rng, [0.85, 0.15, 0, 0], n),
                       np.where(mid, _choice(rng, [0.45, 0.52, 0.03, 0], n),
                                np.where(age < 60, _choice(rng, [0.08, 0.82, 0.08, 0.02], n),
                                         _choice(rng, [0.04, 0.78, 0.08, 0.10], n))))

    # latent factors: affluence a drives income; risk z depends a little on occupation, youth, affluence
    a = rng.standard_normal(n)
    median = np.array([o[1] for o in occ_tab])[occ]
    sigma = np.array([o[2] for o in occ_tab])[occ]
    city_mult = np.array([c[1] for c in CITIES.values()])[city]
    income = median * city_mult * (1 + 0.08 * edu) * np.exp(sigma * (0.8 * a + 0.6 * rng.standard_normal(n)))
    income = np.round(income, -2)
    z = 0.9 * rng.standard_normal(n) + np.array([o[3] for o in occ_tab])[occ] - 0.25 * a + 0.2 * (age < 28)

    # labels from z (+ separate noise each) so the tasks agree but are not copies of each other
    logit = 1.5 * z + 0.5 * rng.standard_normal(n)
    lo, hi = -12.0, 4.0
    for _ in range(50):  # solve the intercept for the target default rate (deterministic)
        b0 = (lo + hi) / 2
        lo, hi = (b0, hi) if _sigmoid(b0 + logit).mean() < DEFAULT_RATE else (lo, b0)
    pd_true = _sigmoid(b0 + logit)
    default = rng.random(n) < pd_true
    grade_raw = z + 0.6 * rng.standard_normal(n)
    grade = np.searchsorted(np.quantile(grade_raw, np.cumsum(RISK_SHARES)[:-1]), grade_raw)
    score = 650 - 58 * z + 18 * a - 30 * default + 28 * rng.standard_normal(n)
    score = np.clip(np.rint(score), 350, 850)

    # identity and account data
    region_codes = np.array([c[2] for c in CITIES.values()])
    region = np.where(rng.random(n) < 0.7, region_codes[city], region_codes[rng.integers(0, len(CITIES), n)])
    back_days = rng.integers(0, 365, n)  # born 0..364 days before the age-th birthday anniversary of ``end``
    leap_day = cal.end.month == 2 and cal.end.day == 29
    anniversary = pd.to_datetime(pd.DataFrame({"year": cal.end.year - age, "month": cal.end.month,
                                               "day": cal.end.day - leap_day}))
    birth = pd.DatetimeIndex(anniversary - pd.to_timedelta(back_days, "D"))
    max_days = np.clip((age - 18) * 365, 60, 15 * 365)
    open_date = np.datetime64(cal.end.date(), "D") - (rng.random(n) * max_days).astype(int) - 30
    ids = _ids(np.arange(n)).astype(object)

    cust = pd.DataFrame({
        "customer_id": pd.Series(ids, dtype="str"),
        "name": pd.Series(_names(rng, male), dtype="str"),
        "id_number": pd.Series(_id_numbers(rng, region, birth, male), dtype="str"),
        "phone": pd.Series(_phones(rng, n), dtype="str"),
        "gender": _strs(["男", "女"], np.where(male, 0, 1)),
        "age": age.astype(np.int64),
        "occupation": _strs(occ_names, occ),
        "education": _strs(EDUCATION, edu),
        "marital_status": _strs(MARITAL, marital),
        "city": _strs(city_names, city),
        "income": income,
        "open_date": pd.Series(open_date.astype("datetime64[us]")),
        "rm_id": _strs([f"RM{i:03d}" for i in range(1, 21)], rng.integers(0, 20, n)),
    })
    lat = {"z": z, "a": a, "age": age, "occ": occ, "city": city, "income": income, "default": default,
           "pd": pd_true, "score": score, "grade": grade, "male": male}
    return cust, lat


def _credit(rng: np.random.Generator, lat: dict, cal: _Calendar) -> pd.DataFrame:
    """Monthly credit records; updates ``lat`` with the per-month balances and loan counts."""
    z, a, default = lat["z"], lat["a"], lat["default"]
    n, m = len(z), len(cal.starts)
    # about half the defaulters visibly deteriorate in the last three months; the rest default "out of the blue"
    stress = (default & (rng.random(n) < 0.5))[:, None] & (np.arange(m) >= m - 3)[None, :]
    limit0 = np.clip(np.round(lat["income"] * 0.3 * np.exp(-0.25 * z + 0.3 * rng.standard_normal(n)), -3),
                     3000, 300_000)
    raise_ = 1 + 0.2 * (rng.random((n, m)) < 0.03)
    limit = np.round(limit0[:, None] * np.cumprod(raise_, axis=1), -2)
    u_c = -1.3 + 0.75 * z + 0.6 * rng.standard_normal(n)
    loans0 = rng.poisson(np.exp(-0.4 + 0.3 * z + 0.25 * a))
    dpd = np.zeros((n, m), np.int64)
    util = np.zeros((n, m))
    loans = np.zeros((n, m), np.int64)
    ar = 0.6 * rng.standard_normal(n)
    late_prev = np.zeros(n, bool)
    for t in range(m):  # months depend on the previous one (roll rates); vectorised over customers
        ar = 0.7 * ar + 0.45 * rng.standard_normal(n)
        util[:, t] = _sigmoid(u_c + ar + 0.4 * stress[:, t])
        p_late = _sigmoid(-3.6 + 0.9 * z + 1.4 * late_prev + 0.6 * stress[:, t])
        late = rng.random(n) < p_late
        bucket = _choice(rng, [0.75, 0.17, 0.06, 0.02], n)  # 1-29, 30-59, 60-89, 90+ days
        dpd[:, t] = np.where(late, bucket * 30 + rng.integers(1, 30, n), 0)
        late_prev = late
        step = rng.random(n)
        loans0 = loans0 + (step < 0.03) - ((step > 0.97) & (loans0 > 0))
        loans[:, t] = loans0
    util[rng.random(n) < 0.08] = 0.0  # dormant cards
    balance = np.round(limit * np.minimum(util * 1.05, 1.05), 2)
    inquiries = rng.poisson(np.exp(-1.7 + 0.55 * z)[:, None] + 0.3 * stress)

    # per-month labels: the latest month carries the customer's label, earlier months drift around it
    drift = np.cumsum(4 * rng.standard_normal((n, m))[:, ::-1], axis=1)[:, ::-1]
    score = np.clip(np.rint(lat["score"][:, None] + drift - drift[:, -1:]), 350, 850)
    default_month = m - 1 - rng.integers(0, min(3, m), n)
    flag = (default[:, None] & (np.arange(m)[None, :] >= default_month[:, None])).astype(np.int64)
    grade_shift = np.where(rng.random((n, m)) < 0.1, rng.choice([-1, 1], (n, m)), 0)
    grade_shift[:, -1] = 0
    grade = np.clip(lat["grade"][:, None] + grade_shift, 0, len(RISK_LEVELS) - 1)
    lat.update(limit=limit, balance=balance, loans=loans, stress=stress)

    ids = np.repeat(np.arange(n), m)
    return pd.DataFrame({
        "customer_id": pd.Series(_ids(ids, lat["first_id"]), dtype="str"),
        "as_of": pd.Series(np.tile(cal.as_of, n).astype("datetime64[us]")),
        "credit_score": score.ravel().astype(float),
        "default_flag": flag.ravel(),
        "risk_level": _strs(list(RISK_LEVELS), grade.ravel()),
        "dpd": dpd.ravel(),
        "credit_limit": limit.ravel(),
        "balance": balance.ravel(),
        "loan_count": loans.ravel(),
        "inquiries": inquiries.ravel().astype(np.int64),
    })


def _event_times(rng: np.random.Generator, cal: _Calendar, month: np.ndarray, hour: np.ndarray,
                 day: np.ndarray | None = None) -> pd.Series:
    if day is None:
        day = (rng.random(len(month)) * cal.days[month]).astype(np.int64)
    seconds = hour * 3600 + rng.integers(0, 3600, len(month))
    t = cal.starts[month].astype("datetime64[s]") + day.astype("timedelta64[D]") + seconds.astype("timedelta64[s]")
    return pd.Series(t.astype("datetime64[us]"))


def _transactions(rng: np.random.Generator, lat: dict, cal: _Calendar) -> pd.DataFrame:
    z, a, age, income = lat["z"], lat["a"], lat["age"], lat["income"]
    n, m = len(z), len(cal.starts)
    occ_kind = np.array([OCCUPATIONS[o][4] for o in OCCUPATIONS])[lat["occ"]]
    kinds = list(INCOME_KINDS)
    kind = np.array([kinds.index(k) for k in occ_kind])
    stress = lat["stress"]
    shape = (n, m)

    # how many transactions of each type each customer makes in each month
    p_miss = 0.02 + 0.10 * _sigmoid(2 * z - 2)  # risky earners skip pay-days more often
    n_income = np.where(kind[:, None] == kinds.index("business"), rng.poisson(3.0, shape),
                        np.where(kind[:, None] == kinds.index("freelance"), rng.poisson(1.3, shape),
                                 (rng.random(shape) > p_miss[:, None]).astype(int)))
    lam_spend = 12 * np.exp(0.12 * a + 0.2 * (age < 35) - 0.2 * (age >= 60) + 0.15 * rng.standard_normal(n))
    counts = {
        "income": n_income,
        "spend": rng.poisson(lam_spend[:, None], shape),
        "transfer_out": rng.poisson((0.6 + 1.2 * _sigmoid(z))[:, None], shape),
        "cash": rng.poisson((0.15 + 1.0 * _sigmoid(1.6 * z - 1.5))[:, None] + 0.4 * stress),
        "transfer_in": rng.poisson(0.5, shape),
        "repay": (lat["balance"] > 0) + np.minimum(lat["loans"], 3),
        "invest_out": rng.poisson((0.7 * _sigmoid(2 * a - 1))[:, None], shape),
        "invest_in": rng.poisson((0.6 * _sigmoid(2 * a - 1))[:, None], shape),
    }
    types = list(counts)
    cm = np.concatenate([np.repeat(np.arange(n * m), counts[t].ravel()) for t in types])
    typ = np.concatenate([np.full(counts[t].sum(), i) for i, t in enumerate(types)])
    cust, month = cm // m, cm % m
    rows = len(cm)
    is_t = {t: typ == i for i, t in enumerate(types)}

    # categories and counterparty pools (one combined pool so the column is built in one take)
    spend_names = list(SPEND)
    categories = [INCOME_KINDS[k][0] for k in kinds] + spend_names + ["转账", "取现", "还款", "理财"]
    cat = np.zeros(rows, np.int64)
    cat[is_t["income"]] = kind[cust[is_t["income"]]]
    # spending mix: risky customers favour 娱乐/购物, older ones 医疗
    base = np.array([s[0] for s in SPEND.values()])
    profiles = []
    for risky in (0, 1, 2):
        for old in (0, 1):
            p = base.copy()
            p[spend_names.index("娱乐")] *= (1.0, 1.5, 2.2)[risky]
            p[spend_names.index("购物")] *= (1.0, 1.15, 1.35)[risky]
            p[spend_names.index("医疗")] *= 2.5 if old else 1.0
            profiles.append(p / p.sum())
    prof = (np.digitize(z, [-0.4, 0.8]) * 2 + (age >= 55))
    sp = is_t["spend"]
    spend_cat = _grouped_choice(rng, prof[cust[sp]], np.array(profiles))
    cat[sp] = len(kinds) + spend_cat
    for t, c in (("transfer_out", "转账"), ("transfer_in", "转账"), ("cash", "取现"), ("repay", "还款"),
                 ("invest_out", "理财"), ("invest_in", "理财")):
        cat[is_t[t]] = categories.index(c, len(kinds))

    # amounts
    monthly = income / 12
    amount = np.zeros(rows)
    inc = is_t["income"]
    sig = np.array([INCOME_KINDS[k][1] for k in kinds])[kind] + 0.12 * np.maximum(z, 0)
    month_factor = np.exp(sig[:, None] * rng.standard_normal(shape) - sig[:, None] ** 2 / 2)
    w = rng.lognormal(0, 0.5, inc.sum())
    g = cm[inc]
    w = w / np.bincount(g, w, n * m)[g]
    amount[inc] = (monthly[:, None] * month_factor).ravel()[g] * w
    ratio = np.exp(-0.8 + 0.3 * z + 0.2 * rng.standard_normal(n))  # spending-to-income
    raw = np.array([s[1] for s in SPEND.values()])[spend_cat] * rng.lognormal(0, 0.8, sp.sum())
    g = cm[sp]
    target = (monthly * ratio)[:, None] * np.exp(0.2 * rng.standard_normal(shape))
    amount[sp] = raw / np.bincount(g, raw, n * m)[g] * target.ravel()[g]
    k = is_t["transfer_out"]
    amount[k] = np.round(monthly[cust[k]] * 0.12 * rng.lognormal(0.2 * z[cust[k]], 0.7), -1)
    k = is_t["transfer_in"]
    amount[k] = np.round(rng.lognormal(np.log(800), 0.8, k.sum()), -1)
    k = is_t["cash"]
    amount[k] = rng.integers(1, 31, k.sum()) * 100.0
    k = is_t["repay"]
    # the first repayment of a month is the card (part of the balance, risky customers pay less of it),
    # the others are loan instalments
    card = np.zeros(rows, bool)
    card[k] = np.r_[True, cm[k][1:] != cm[k][:-1]] & (lat["balance"].ravel()[cm[k]] > 0)
    due = np.minimum(lat["balance"].ravel()[cm[k]], 0.3 * monthly[cust[k]] * rng.lognormal(0, 0.2, k.sum()))
    amount[k] = np.round(np.where(card[k], due * _sigmoid(1 - 1.5 * z[cust[k]]),
                                  0.08 * monthly[cust[k]] * rng.lognormal(0, 0.3, k.sum())), 2)
    k = is_t["invest_out"] | is_t["invest_in"]
    amount[k] = np.round(monthly[cust[k]] * rng.lognormal(-0.5, 0.6, k.sum()), -3) + 1000
    amount = np.round(np.maximum(amount, 1.0), 2)

    # channels by transaction type; older customers use the counter and POS more
    chan_p = {"spend": [0.12, 0.05, 0.02, 0, 0.31, 0.50], "transfer_out": [0.70, 0.15, 0.10, 0, 0, 0.05],
              "transfer_in": [0.70, 0.15, 0.10, 0, 0, 0.05], "cash": [0, 0, 0, 1, 0, 0],
              "repay": [0.60, 0.20, 0.05, 0, 0, 0.15], "invest_out": [0.75, 0.15, 0.10, 0, 0, 0],
              "invest_in": [0.75, 0.15, 0.10, 0, 0, 0]}
    channel = np.zeros(rows, np.int64)
    channel[inc] = _grouped_choice(rng, kind[cust[inc]], np.array([INCOME_KINDS[k][2] for k in kinds]))
    for t, p in chan_p.items():
        k = is_t[t]
        channel[k] = _choice(rng, p, k.sum())
    old_rows = (age[cust] >= 60) & (rng.random(rows) < 0.35)
    channel[old_rows & sp] = CHANNELS.index("POS")
    channel[old_rows & is_t["transfer_out"]] = CHANNELS.index("柜面")

    # counterparties: employer per customer, merchants per category, a few contacts per customer
    city_names = list(CITIES)
    employers = np.char.add(np.char.add(np.asarray(city_names)[lat["city"]], _company_cores(rng, n)),
                            np.char.add(np.asarray(INDUSTRIES)[rng.integers(0, len(INDUSTRIES), n)], "有限公司"))
    occ_names = list(OCCUPATIONS)
    public = {"公务员": "市税务局", "教师": "市第{}中学", "医生": "市第{}人民医院", "退休": "社会保险基金管理中心"}
    for o, fmt in public.items():
        k = lat["occ"] == occ_names.index(o)
        num = rng.integers(1, 20, k.sum()).astype(str)
        if not k.any():  # no customer of this occupation (small portfolios): np.char cannot size an empty array
            continue
        employers[k] = np.char.add(np.asarray(city_names)[lat["city"][k]],
                                   np.char.replace(np.full(k.sum(), fmt), "{}", num))
    contacts = _names(rng, rng.random(max(50, n // 2)) < 0.5)
    merchants = [x for s in SPEND.values() for x in s[2]]
    m_off = np.cumsum([0] + [len(s[2]) for s in SPEND.values()])
    pool = np.concatenate([employers.astype(object), contacts, merchants, LENDERS, FUNDS])
    o_contact, o_merch = n, n + len(contacts)
    o_lend, o_fund = o_merch + len(merchants), o_merch + len(merchants) + len(LENDERS)
    cp = np.full(rows, -1, np.int64)
    emp_rows = inc & (kind[cust] != kinds.index("allowance"))
    cp[emp_rows] = cust[emp_rows]
    person = is_t["transfer_out"] | is_t["transfer_in"] | (inc & ~emp_rows)
    cp[person] = o_contact + (cust[person] * 7 + rng.integers(0, 5, person.sum())) % len(contacts)
    sizes = np.diff(m_off)[spend_cat]
    cp[sp] = o_merch + m_off[spend_cat] + (rng.random(sp.sum()) * sizes).astype(np.int64)
    k = is_t["repay"]
    cp[k] = o_lend + np.where(card[k], 0, rng.integers(1, len(LENDERS), k.sum()))  # 0: the card centre
    k = is_t["invest_out"] | is_t["invest_in"]
    cp[k] = o_fund + rng.integers(0, len(FUNDS), k.sum())

    # location: home city, travel elsewhere
    loc = lat["city"][cust].copy()
    away = (cat == categories.index("旅游")) & (rng.random(rows) < 0.8) | (rng.random(rows) < 0.03)
    loc[away] = rng.integers(0, len(CITIES), away.sum())

    # times: pay-day for salaries and pensions, otherwise any day; risky customers are more often up at night
    p_night = _sigmoid(-3.4 + 0.6 * z + 0.4 * (age < 30))[cust]
    p_night = np.where(is_t["cash"], p_night * 1.5, p_night)
    hour = _hours(rng, p_night)
    day = (rng.random(rows) * cal.days[month]).astype(np.int64)
    regular = inc & np.isin(kind[cust], [kinds.index("salary"), kinds.index("pension")])
    payday = rng.choice([4, 9, 14, 24], n)
    day[regular] = np.minimum(payday[cust[regular]], cal.days[month[regular]] - 1)
    hour[regular] = rng.integers(8, 11, regular.sum())
    times = _event_times(rng, cal, month, hour, day)

    order = np.lexsort((times.to_numpy(), cust))
    direction = np.where(inc | is_t["transfer_in"] | is_t["invest_in"], 0, 1)
    ids = _ids(cust, lat["first_id"])
    out = pd.DataFrame({
        "customer_id": pd.Series(ids[order], dtype="str"),
        "txn_time": times.to_numpy()[order],
        "amount": amount[order],
        "direction": _strs(["in", "out"], direction[order]),
        "channel": _strs(CHANNELS, channel[order]),
        "category": _strs(categories, cat[order]),
        "location": _strs(city_names, loc[order]),
        "counterparty": _strs(pool, np.where(is_t["cash"], -1, cp)[order]),
    })
    return out


def _company_cores(rng: np.random.Generator, n: int) -> np.ndarray:
    cores = np.asarray(COMPANY_CORES)
    return np.char.add(cores[rng.integers(0, len(cores), n)], cores[rng.integers(0, len(cores), n)])


def _behaviors(rng: np.random.Generator, lat: dict, cal: _Calendar) -> pd.DataFrame:
    z, a, age = lat["z"], lat["a"], lat["age"]
    n, m = len(z), len(cal.starts)
    lam = 8 * np.exp(0.35 * (age < 35) - 0.5 * (age >= 60) + 0.25 * rng.standard_normal(n))
    counts = rng.poisson(lam[:, None], (n, m))
    cm = np.repeat(np.arange(n * m), counts.ravel())
    cust, month = cm // m, cm % m
    rows = len(cm)

    # event mix and products: risky customers apply more and look at credit products, affluent ones at funds
    risk_bin = np.digitize(z, [-0.4, 0.8])
    ev_p = np.array([[0.36, 0.28, 0.20, 0.06, 0.08, 0.02], [0.36, 0.27, 0.20, 0.06, 0.08, 0.03],
                     [0.36, 0.25, 0.19, 0.06, 0.08, 0.06]])
    ev = _grouped_choice(rng, risk_bin[cust], ev_p)
    prod_p = []
    for r in range(3):
        for rich in (0, 1):
            p = np.array([0.22, 0.15, 0.22, 0.15, 0.16, 0.10])
            p[:2] *= (1.0, 1.6, 2.6)[r]
            p[2:4] *= 1.8 if rich else 1.0
            prod_p.append(p / p.sum())
    prod = _grouped_choice(rng, (risk_bin * 2 + (a > 0.5))[cust], np.array(prod_p))
    with_product = np.isin(ev, [EVENT_TYPES.index(e) for e in ("view", "click", "apply")])
    prod = np.where(with_product, prod, -1)
    pages = [p for e in EVENT_TYPES for p in EVENT_PAGES[e]]
    p_off = np.cumsum([0] + [len(EVENT_PAGES[e]) for e in EVENT_TYPES])
    page = p_off[ev] + (rng.random(rows) * np.diff(p_off)[ev]).astype(np.int64)

    # devices: a main device and up to two others (more often for risky customers), used now and then
    main = _choice(rng, [0.45, 0.45, 0.10], n)
    u, lean = rng.random(n), _sigmoid(1.5 * z - 1)
    n_dev = 1 + (u < 0.25 + 0.3 * lean) + (u < 0.05 + 0.15 * lean)
    other = (rng.random(rows) < 0.2) * rng.integers(1, 3, rows)
    device = (main[cust] + np.minimum(other, n_dev[cust] - 1)) % len(DEVICES)

    p_night = _sigmoid(-3.0 + 0.7 * z + 0.5 * (age < 30))[cust]
    times = _event_times(rng, cal, month, _hours(rng, p_night))
    order = np.lexsort((times.to_numpy(), cust))
    ids = _ids(cust, lat["first_id"])
    return pd.DataFrame({
        "customer_id": pd.Series(ids[order], dtype="str"),
        "event_time": times.to_numpy()[order],
        "event_type": _strs(EVENT_TYPES, ev[order]),
        "page": _strs(pages, page[order]),
        "product": _strs(PRODUCTS, prod[order]),
        "device": _strs(DEVICES, device[order]),
    })


def _rate_intercept(logit: np.ndarray, rate: float) -> float:
    """The intercept b0 with mean(sigmoid(b0 + logit)) = ``rate`` (bisection; deterministic)."""
    lo, hi = -12.0, 6.0
    for _ in range(50):
        b0 = (lo + hi) / 2
        lo, hi = (b0, hi) if _sigmoid(b0 + logit).mean() < rate else (lo, b0)
    return (lo + hi) / 2


def _marketing(rng: np.random.Generator, lat: dict, cal: _Calendar, ids: pd.Series, txns: pd.DataFrame,
               behav: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The marketing side: latent interest ``w`` and disengagement ``d``, the events they leave (extra 理财/基金
    views, fading activity and transfers to other banks in the last three months) and the two outcomes."""
    z, a = lat["z"], lat["a"]
    n, m = len(z), len(cal.starts)
    w = 0.6 * a + 0.8 * rng.standard_normal(n)  # interest in investing: partly affluence
    d = 0.85 * rng.standard_normal(n) + 0.3 * z - 0.2 * a  # disengagement: partly risk, less for the affluent
    fade = _sigmoid(2.2 * (d - 0.9))  # how strongly activity fades over the last three months
    recent = np.arange(m) >= m - 3
    keep_share = 1.0 - np.clip(np.arange(m) - (m - 4), 0, 3) * 0.28  # 1 … 1, then 0.72, 0.44, 0.16
    index = pd.Index(ids)
    t_idx = index.get_indexer(txns["customer_id"])
    b_idx = index.get_indexer(behav["customer_id"])
    starts = cal.starts.astype("datetime64[us]")
    t_month = np.searchsorted(starts, txns["txn_time"].to_numpy(), side="right") - 1
    b_month = np.searchsorted(starts, behav["event_time"].to_numpy(), side="right") - 1

    # products held: a card in use, loans, investments (from the generated events)
    invests = np.bincount(t_idx[(txns["category"] == "理财").to_numpy()], minlength=n) > 0
    products = (lat["balance"][:, -1] > 0).astype(int) + (lat["loans"][:, -1] > 0) + invests
    occ_kind = np.array([OCCUPATIONS[o][4] for o in OCCUPATIONS])[lat["occ"]]
    salary = np.isin(occ_kind, ["salary", "pension"])

    # extra views of wealth products: more with interest, rising in the last three months for the keen
    lam = 0.5 * np.exp(0.9 * w)[:, None] * (1 + 0.8 * recent[None, :] * _sigmoid(2 * w - 1)[:, None])
    counts = rng.poisson(lam)
    cm = np.repeat(np.arange(n * m), counts.ravel())
    v_cust, v_month = cm // m, cm % m
    k = len(cm)
    click = rng.random(k) < 0.3
    main_device = behav.groupby(b_idx, sort=True)["device"].first().reindex(np.arange(n)).fillna(DEVICES[0])
    views = pd.DataFrame({
        "customer_id": pd.Series(ids.to_numpy()[v_cust], dtype="str"),
        "event_time": _event_times(rng, cal, v_month, _hours(rng, np.full(k, 0.03))),
        "event_type": _strs(EVENT_TYPES, np.where(click, EVENT_TYPES.index("click"), EVENT_TYPES.index("view"))),
        "page": _strs(["产品详情", "产品列表"], click.astype(np.int64)),
        "product": _strs(list(WEALTH_PRODUCTS), (rng.random(k) < 0.4).astype(np.int64)),
        "device": pd.Series(main_device.to_numpy(dtype=object)[v_cust], dtype="str"),
    })

    # fading activity: app events and everyday transactions thin out, salary arrives less often
    keep_p = 1.0 - fade[:, None] * (1.0 - keep_share[None, :])
    b_all = np.concatenate([b_idx, v_cust])
    b_m = np.concatenate([b_month, v_month])
    behav = pd.concat([behav, views], ignore_index=True)
    b_keep = rng.random(len(behav)) < keep_p[b_all, b_m]
    thinned = ~txns["category"].isin(["还款", "理财"]).to_numpy()  # bills and investments still run
    income = txns["category"].isin([INCOME_KINDS[k_][0] for k_ in ("salary", "pension")]).to_numpy()
    t_keep_p = np.where(income, 1.0 - 0.5 * (1.0 - keep_p[t_idx, t_month]), keep_p[t_idx, t_month])
    t_keep = ~thinned | (rng.random(len(txns)) < t_keep_p)

    # transfers to the customer's own accounts at other banks, mostly in the last three months
    lam_out = (0.08 + 2.2 * fade)[:, None] * recent[None, :] + 0.04
    counts = rng.poisson(lam_out)
    cm = np.repeat(np.arange(n * m), counts.ravel())
    o_cust, o_month = cm // m, cm % m
    k = len(cm)
    monthly = lat["income"] / 12
    transfers = pd.DataFrame({
        "customer_id": pd.Series(ids.to_numpy()[o_cust], dtype="str"),
        "txn_time": _event_times(rng, cal, o_month, 8 + _choice(rng, DAY_HOURS[2:], k)),
        "amount": np.round(np.maximum(monthly[o_cust] * rng.lognormal(0.2, 0.5, k), 500), -2),
        "direction": _strs(["in", "out"], np.ones(k, np.int64)),
        "channel": _strs(CHANNELS, _choice(rng, [0.8, 0.2, 0, 0, 0, 0], k)),
        "category": _strs(["转账"], np.zeros(k, np.int64)),
        "location": _strs(list(CITIES), lat["city"][o_cust]),
        "counterparty": _strs([f"{c}(本人账户)" for c in COMPETITORS], rng.integers(0, len(COMPETITORS), k)),
    })
    txns = pd.concat([txns[t_keep], transfers], ignore_index=True)
    t_all = np.concatenate([t_idx[t_keep], o_cust])
    txns = txns.iloc[np.lexsort((txns["txn_time"].to_numpy(), t_all))].reset_index(drop=True)
    b_all = b_all[b_keep]
    behav = behav[b_keep]
    behav = behav.iloc[np.lexsort((behav["event_time"].to_numpy(), b_all))].reset_index(drop=True)

    # the outcomes: noisy functions of the latent factors (and the products held), at target base rates
    logit_p = 1.3 * w + 0.45 * a - 0.35 * z + 0.35 * salary - 0.6 * d + 0.5 * rng.standard_normal(n)
    p_purchase = _sigmoid(_rate_intercept(logit_p, PURCHASE_RATE) + logit_p)
    logit_c = 1.5 * d - 0.45 * (products - products.mean()) - 0.25 * a + 0.5 * rng.standard_normal(n)
    p_churn = _sigmoid(_rate_intercept(logit_c, CHURN_RATE) + logit_c)
    purchase = rng.random(n) < p_purchase
    churn = rng.random(n) < p_churn
    return txns, behav, {"w": w, "d": d, "p_purchase": p_purchase, "p_churn": p_churn, "purchase": purchase,
                         "churn": churn}


def write_portfolio(p: Portfolio, out_dir: str | Path, fmt: str = "parquet") -> dict[str, Path]:
    """Write the four canonical tables as ``<table>.parquet`` or UTF-8 ``<table>.csv``; returns the paths."""
    if fmt not in ("parquet", "csv"):
        raise ValueError(f"Unknown format {fmt!r}: use 'parquet' or 'csv'.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, frame in p.tables().items():
        path = out / f"{name}.{fmt}"
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False, encoding="utf-8")
        paths[name] = path
    return paths

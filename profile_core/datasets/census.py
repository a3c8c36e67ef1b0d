"""Census-Income (KDD) — the data set of the MMoE paper (Ma et al., KDD 2018, sec. 6.3) — as a customer table.

Only the test file (``census-income.test.gz``, 99,762 rows, 42 fields, no header) is available here; the
paper trained on the 199,523-row training file. Field names follow drawbridge/keras-mmoe.

- group 1 (the paper's): ``income_50k`` (income > 50K, binary) and ``never_married`` (binary);
- group 2 (the paper's): ``college`` (education at least some college, binary) and ``never_married``.

``marital_stat`` (the source of ``never_married``) is display-only; ``instance_weight`` is a sampling weight,
never a feature; in group 2 ``education`` and ``hs_college`` are display-only too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from profile_core.datasets.base import DatasetBundle, DatasetError, check_columns, resolve
from profile_core.i18n import t
from profile_core.tasks import TaskSpec

NAME = "census"
RELATIVE = "census_income_kdd/census-income.test.gz"
SAMPLE = "census_sample.csv.gz"
SOURCE = ("Census-Income (KDD), 1994/95 Current Population Survey — UCI Machine Learning Repository id 117; "
          "the data set of Ma et al. 2018 (MMoE), sec. 6.3. Only the test file (99,762 rows) is used here.")
LICENCE = "CC BY 4.0"

FIELDS = ["age", "class_worker", "det_ind_code", "det_occ_code", "education", "wage_per_hour", "hs_college",
          "marital_stat", "major_ind_code", "major_occ_code", "race", "hisp_origin", "sex", "union_member",
          "unemp_reason", "full_or_part_emp", "capital_gains", "capital_losses", "stock_dividends",
          "tax_filer_stat", "region_prev_res", "state_prev_res", "det_hh_fam_stat", "det_hh_summ",
          "instance_weight", "mig_chg_msa", "mig_chg_reg", "mig_move_reg", "mig_same", "mig_prev_sunbelt",
          "num_emp", "fam_under_18", "country_father", "country_mother", "country_self", "citizenship",
          "own_or_self", "vet_question", "vet_benefits", "weeks_worked", "year", "income_50k"]
NUMERIC_FIELDS = ["age", "wage_per_hour", "capital_gains", "capital_losses", "stock_dividends", "num_emp",
                  "weeks_worked"]
# integer-coded fields that are categories, not quantities
CODED_FIELDS = ["det_ind_code", "det_occ_code", "own_or_self", "vet_benefits", "year"]
INCOME_POSITIVE = "50000+."
COLLEGE = {"Some college but no degree", "Associates degree-occup /vocational", "Associates degree-academic program",
           "Bachelors degree(BA AB BS)", "Masters degree(MA MS MEng MEd MSW MBA)",
           "Prof school degree (MD DDS DVM LLB JD)", "Doctorate degree(PhD EdD)"}

COLUMNS: dict[str, tuple[str, str, str]] = {
    "customer_id": ("客户ID", "Customer ID", "basic"),
    "age": ("年龄", "Age", "basic"),
    "class_worker": ("就业类型", "Class of worker", "basic"),
    "det_ind_code": ("行业细类代码", "Industry code (detailed)", "basic"),
    "det_occ_code": ("职业细类代码", "Occupation code (detailed)", "basic"),
    "education": ("学历", "Education", "basic"),
    "wage_per_hour": ("时薪", "Wage per hour", "transaction"),
    "hs_college": ("上学期间在读", "Enrolled in edu. last week", "basic"),
    "marital_stat": ("婚姻状况", "Marital status", "basic"),
    "major_ind_code": ("行业大类", "Industry (major)", "basic"),
    "major_occ_code": ("职业大类", "Occupation (major)", "basic"),
    "race": ("种族", "Race", "basic"),
    "hisp_origin": ("西班牙裔出身", "Hispanic origin", "basic"),
    "sex": ("性别", "Sex", "basic"),
    "union_member": ("工会成员", "Union member", "behavior"),
    "unemp_reason": ("失业原因", "Reason for unemployment", "behavior"),
    "full_or_part_emp": ("全职/兼职", "Full or part-time", "behavior"),
    "capital_gains": ("资本利得", "Capital gains", "transaction"),
    "capital_losses": ("资本损失", "Capital losses", "transaction"),
    "stock_dividends": ("股息收入", "Stock dividends", "transaction"),
    "tax_filer_stat": ("报税身份", "Tax filer status", "credit"),
    "region_prev_res": ("原居住地区", "Region of previous residence", "behavior"),
    "state_prev_res": ("原居住州", "State of previous residence", "behavior"),
    "det_hh_fam_stat": ("家庭中身份(细)", "Household/family status (detailed)", "basic"),
    "det_hh_summ": ("家庭中身份", "Household summary", "basic"),
    "instance_weight": ("抽样权重", "Instance weight", "basic"),
    "mig_chg_msa": ("迁移-都市区变化", "Migration code: change in MSA", "behavior"),
    "mig_chg_reg": ("迁移-地区变化", "Migration code: change in region", "behavior"),
    "mig_move_reg": ("迁移-区内迁移", "Migration code: move within region", "behavior"),
    "mig_same": ("一年前同住所", "Lived in this house 1 year ago", "behavior"),
    "mig_prev_sunbelt": ("原居阳光带", "Previous residence in Sunbelt", "behavior"),
    "num_emp": ("雇主员工数", "Persons worked for employer", "basic"),
    "fam_under_18": ("未成年家庭成员", "Family members under 18", "basic"),
    "country_father": ("父亲出生国", "Country of birth (father)", "basic"),
    "country_mother": ("母亲出生国", "Country of birth (mother)", "basic"),
    "country_self": ("本人出生国", "Country of birth (self)", "basic"),
    "citizenship": ("公民身份", "Citizenship", "basic"),
    "own_or_self": ("自雇业主", "Own business or self-employed", "transaction"),
    "vet_question": ("退伍军人问卷", "Veterans questionnaire", "basic"),
    "vet_benefits": ("退伍军人福利", "Veterans benefits", "basic"),
    "weeks_worked": ("年工作周数", "Weeks worked in year", "behavior"),
    "year": ("调查年份", "Survey year", "basic"),
    "income_50k": ("年收入超5万美元", "Income > 50K", "credit"),
    "never_married": ("从未结婚", "Never married", "basic"),
    "college": ("大学及以上学历", "At least some college", "basic"),
}

INCOME_TASK = TaskSpec("income_50k", "income_50k", "binary", zh="年收入超5万美元", en="Income > 50K")
MARRIED_TASK = TaskSpec("never_married", "never_married", "binary", zh="从未结婚", en="Never married")
COLLEGE_TASK = TaskSpec("college", "college", "binary", zh="大学及以上学历", en="At least some college")
GROUPS: dict[int, tuple[list[TaskSpec], list[str]]] = {  # tasks, display-only source columns
    1: ([INCOME_TASK, MARRIED_TASK], ["marital_stat"]),
    2: ([COLLEGE_TASK, MARRIED_TASK], ["marital_stat", "education", "hs_college"]),
}


def read_raw(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path, header=None, names=FIELDS, sep=",", skipinitialspace=True,
                      compression="infer", dtype={c: "str" for c in FIELDS if c not in (*NUMERIC_FIELDS,
                                                                                       "instance_weight")})
    check_columns(raw, FIELDS, path)
    if raw["income_50k"].isna().any():
        raise DatasetError("datasets.bad_columns", path=str(path), columns="income_50k")
    return raw


def build_frame(raw: pd.DataFrame) -> pd.DataFrame:
    f = pd.DataFrame(index=raw.index)
    f["customer_id"] = pd.Series([f"CE{i:06d}" for i in range(1, len(raw) + 1)], index=raw.index, dtype="str")
    for c in FIELDS:
        if c == "income_50k":
            continue
        if c in NUMERIC_FIELDS or c == "instance_weight":
            f[c] = pd.to_numeric(raw[c]).astype(np.float64)
        else:
            f[c] = raw[c].astype("str").str.strip()
    f["income_50k"] = (raw["income_50k"].astype("str").str.strip() == INCOME_POSITIVE).astype(np.int64)
    f["never_married"] = (f["marital_stat"] == "Never married").astype(np.int64)
    f["college"] = f["education"].isin(COLLEGE).astype(np.int64)
    return f.reset_index(drop=True)


def load_census(path: str | Path | None = None, group: int = 1) -> DatasetBundle:
    """Census-Income (KDD) with the MMoE paper's task ``group`` (1 or 2): ``path``, else
    ../shared/datasets/census_income_kdd/census-income.test.gz, else the 2,000-row shipped sample."""
    if group not in GROUPS:
        raise DatasetError("datasets.census_group", group=group)
    tasks, display_only = GROUPS[group]
    file, is_sample = resolve(path, RELATIVE, SAMPLE)
    frame = build_frame(read_raw(file))
    excluded = {"instance_weight", "income_50k", *display_only}
    numeric = [c for c in NUMERIC_FIELDS if c not in excluded]
    categorical = [c for c in FIELDS if c not in NUMERIC_FIELDS and c not in excluded]
    return DatasetBundle(
        name=NAME, zh=t("datasets.census.title", "zh", group=group), en=t("datasets.census.title", "en", group=group),
        frame=frame, tasks=list(tasks), numeric=numeric, categorical=categorical, columns=dict(COLUMNS),
        source=SOURCE, licence=LICENCE, path=str(file), is_sample=is_sample,
        display_only=[*display_only, "instance_weight"] + (["income_50k"] if group == 2 else []),
        stratify=tasks[0].label,
    )

"""The mapping step: bank exports in their own layout → the canonical schema.

A :class:`Mapping` covers one load: one :class:`TableMapping` per uploaded file (or Excel sheet), saying
which canonical table it holds and, per source column, a :class:`ColumnMapping`:

* ``role`` — ``key`` (customer_id / account_id), ``field`` (a canonical field such as ``txn_time``),
  ``feature`` (kept under its own name, or ``target`` if given), ``label`` (a training target with ``kind``
  regression / binary / multiclass; canonical label names credit_score / default_flag / risk_level or any
  name on the customers table) or ``ignore`` (free text, direct identifiers: dropped);
* parse options — ``date_format`` (see :mod:`.parsers`), ``decimal_comma``, ``codes``
  (code → label, e.g. ``{"1": "男", "2": "女"}``).

Plus ``derived`` columns per table (age from a birth date, a flag from a threshold, a class from bins) and,
for events keyed by account, a :class:`LinkSpec` telling which holders of an account get its events
(``owner`` by default) — the link table itself is one of the uploaded files (table ``account_links``).

``propose_mapping`` proposes a TableMapping for one raw frame: by alias, by name similarity (difflib) and by
content (unique IDs, parseable dates, numbers with decimals, low-cardinality categories), each column with
sample values, a confidence in [0, 1] and a reason. ``apply_mapping`` turns a raw frame into canonical
columns; :func:`.loading.load_into_workspace` does the rest (validation, account → customer
resolution, atomic store) — the same code path for the app and the CLI.

Saved mappings are small YAML files (format ``profile_core.mapping``, version 1) in a :class:`MappingStore`
folder (``mappings/`` beside the workspace by default); each table carries the header signature of its
file, so a later upload with the same header gets the saved mapping again automatically.

Labels: the load reports every label column with its kind in ``LoadResult.labels`` and stores the same
dict in the workspace (``Workspace.meta(dataset)["labels"]``); non-canonical label columns live on the
customers table (the flat form) under their output names.

The helpers the mapping step's widgets call (choose a target, set labels, display frames) live in
:mod:`.editing`.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..i18n import MessageError, t
from ..schema import (
    ACCOUNT_ID,
    ACCOUNT_LINKS,
    DIRECTION_VALUES,
    EVENT_TABLES,
    GENDER_VALUES,
    HOLDER_ROLES,
    LABEL_TASK_KINDS,
    TABLES,
    Column,
    Table,
    alias_map,
    normalize_header,
)
from . import parsers as parsing
from .parsers import FLAG_VALUES, to_datetime, to_flag, to_number
from .reading import read_sheets, resolve_table
from .report import FLAT_CUSTOMERS, IngestError, Issue, Msg, ValidationReport, issue

Role = Literal["key", "field", "feature", "label", "ignore"]
LabelKind = Literal["regression", "binary", "multiclass"]
TableName = Literal["customers", "transactions", "behaviors", "credit_records", "account_links", "attach"]
ROLES: tuple[str, ...] = ("key", "field", "feature", "label", "ignore")
LABEL_KINDS: tuple[str, ...] = ("regression", "binary", "multiclass")
TABLE_NAMES: tuple[str, ...] = ("customers", "transactions", "behaviors", "credit_records", "account_links",
                                "attach")
#: a file whose rows attach to customers by a key (see JoinSpec): account attributes, a loan per account, a
#: region table looked up by the customers' region code
ATTACH = "attach"
_ATTACH_TABLE = Table(ATTACH, "附加表", "attached table", (), "basic")
LINK_TABLE = "account_links"
KEYS = ("customer_id", "account_id")
#: kinds of the canonical label columns
CANONICAL_LABELS: dict[str, str] = dict(LABEL_TASK_KINDS)
FORMAT = "profile_core.mapping"
FORMAT_VERSION = 1
MAX_CATEGORY_LEVELS = 50  # more distinct texts than this: free text or an identifier → ignore
PROPOSE_ROWS = 5000  # rows looked at when proposing
LABEL_HINTS = ("label", "target", "default", "bad", "y", "class", "outcome", "churn", "risk", "response", "违约", "标签", "目标")
BIRTH_HINTS = ("birth", "dob", "出生", "生日", "geburt")
DATE_HINTS = ("date", "time", "dt", "day", "datum", "日期", "时间", "日", "timestamp", "ts", "birth", "生日")

# ---- the canonical targets per table -----------------------------------------------------------------
_EVENT_ACCOUNT = dc_replace(ACCOUNT_ID, required=False)


def target_table(name: str) -> Table:
    """The fields a file of table ``name`` can map to (events may be keyed by account_id instead)."""
    if name == "customers":
        return FLAT_CUSTOMERS
    if name == LINK_TABLE:
        return ACCOUNT_LINKS
    if name == ATTACH:
        return _ATTACH_TABLE
    base = TABLES[name]
    return Table(base.name, base.zh, base.en, base.columns + (_EVENT_ACCOUNT,), base.category, base.time_column,
                 base.aliases)


def required_fields(table: str) -> list[str]:
    """Canonical fields a file of ``table`` must provide (events: customer_id or account_id)."""
    return [c for c in target_table(table).required]


# ---- models ------------------------------------------------------------------------------------------
class MappingError(MessageError):
    """A mapping file that cannot be used; ``key``/``values`` give the message in both languages."""


LabelRole = Literal["pd", "score", "grade", "propensity", "churn", "generic"]
LABEL_ROLES: tuple[str, ...] = ("pd", "score", "grade", "propensity", "churn", "generic")


class LabelSpec(BaseModel):
    """One more label read from a column (a column may feed several: codes → binary, codes → class).
    ``codes`` map the column's values first (e.g. ``{A: "0", B: "1", C: "0", D: "1"}``); ``role`` tells the
    trainer what the label means (pd: probability of default, score, grade, generic)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: LabelKind
    codes: dict[str, str] = Field(default_factory=dict)
    role: LabelRole | None = None

    @field_validator("codes", mode="before")
    @classmethod
    def _codes_as_text(cls, v: object) -> object:
        return {str(k): str(val) for k, val in v.items()} if isinstance(v, dict) else v


class BirthNumber(BaseModel):
    """An identity/birth number whose first six digits are the birth date ``YYMMDD`` and whose month tells the
    sex: women's months are ``female_month_offset`` higher (Czech/Slovak rodné číslo: +50). The column's
    output is the birth date; the sex goes to column ``sex`` (None: not kept) as ``female`` / ``male``.
    Two-digit years follow the column's ``pivot``."""

    model_config = ConfigDict(extra="forbid")

    pattern: Literal["YYMMDD"] = "YYMMDD"
    female_month_offset: int = Field(default=50, ge=1, le=80)
    sex: str | None = "gender"
    female: str = "女"
    male: str = "男"


class ColumnMapping(BaseModel):
    """One source column: where it goes and how its values are read."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    source: str
    target: str | None = None  # canonical field (key/field), output name (feature/label; None = source)
    role: Role = "feature"
    kind: LabelKind | None = None  # labels only
    date_format: str | None = None  # a key of parsing.DATE_FORMATS; None = the generic date reader
    decimal_comma: bool = False
    thousands: Literal[",", ".", " ", "'"] | None = None  # amounts: the thousands separator (symbols are dropped)
    pivot: int | None = Field(default=None, ge=-1, le=99)  # two-digit years: yy > pivot → 19yy; -1: all 19yy
    birth_number: BirthNumber | None = None
    codes: dict[str, str] = Field(default_factory=dict)
    label_role: LabelRole | None = None  # role: label only — what the label means to the trainer
    labels: list[LabelSpec] = Field(default_factory=list)  # further labels from this same column
    protected: bool = False  # a protected attribute: stored, never a model input
    # proposal details (never saved)
    confidence: float = Field(default=1.0, exclude=True)
    reason: str = Field(default="mapping.reason.user", exclude=True)
    reason_values: dict[str, str] = Field(default_factory=dict, exclude=True)
    samples: list[str] = Field(default_factory=list, exclude=True)

    @field_validator("date_format")
    @classmethod
    def _known_format(cls, v: str | None) -> str | None:
        if v is not None and v not in parsing.DATE_FORMATS:
            raise ValueError(f"unknown date format {v!r}; use one of {list(parsing.DATE_FORMATS)}")
        return v

    @field_validator("codes", mode="before")
    @classmethod
    def _codes_as_text(cls, v: object) -> object:
        return {str(k): str(val) for k, val in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _consistent(self) -> ColumnMapping:
        if self.role == "key" and self.target not in KEYS:
            raise ValueError(f"a key column maps to one of {KEYS}, not {self.target!r}")
        if self.role == "field" and not self.target:
            raise ValueError(f"column {self.source!r}: a mapped field needs a target")
        if self.role == "label" and self.kind is None and self.target in CANONICAL_LABELS:
            object.__setattr__(self, "kind", CANONICAL_LABELS[self.target])
        if self.role != "label" and self.kind is not None:
            object.__setattr__(self, "kind", None)
        if self.role != "label" and self.label_role is not None:
            object.__setattr__(self, "label_role", None)
        return self

    @property
    def output(self) -> str | None:
        """Column name in the canonical frame (None when ignored)."""
        return None if self.role == "ignore" else (self.target or self.source)

    def reason_text(self, lang: str = "zh") -> str:
        values = dict(self.reason_values)
        if "format" in values and values["format"] in parsing.DATE_FORMATS:
            values["format"] = parsing.DATE_FORMATS[values["format"]][0 if lang == "zh" else 1]
        return t(self.reason, lang, **values)


class DerivedColumn(BaseModel):
    """A column computed after mapping: ``age`` (completed years from a birth date, at ``as_of`` or today),
    ``threshold`` (1 where the source ≥ ``threshold`` else 0) or ``bins`` (right-open ``edges`` →
    ``labels``, one more label than edges). ``source`` is an output column or a source header."""

    model_config = ConfigDict(extra="forbid")

    name: str
    op: Literal["age", "threshold", "bins"]
    source: str
    as_of: date | None = None
    threshold: float | None = None
    edges: list[float] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    role: Literal["field", "feature", "label"] = "feature"
    kind: LabelKind | None = None

    @model_validator(mode="after")
    def _complete(self) -> DerivedColumn:
        if self.op == "threshold" and self.threshold is None:
            raise ValueError(f"derived column {self.name!r}: threshold needs a value")
        if self.op == "bins" and (len(self.labels) != len(self.edges) + 1 or self.edges != sorted(self.edges)):
            raise ValueError(f"derived column {self.name!r}: bins need increasing edges and one label more")
        if self.role == "label" and self.kind is None:
            kind = CANONICAL_LABELS.get(self.name) or {"threshold": "binary", "bins": "multiclass"}.get(self.op,
                                                                                                        "regression")
            object.__setattr__(self, "kind", kind)
        return self


class JoinSpec(BaseModel):
    """How an ``attach`` table's rows reach customers: its output column ``key`` matches the customers column
    ``on`` (default: the same name; a lookup such as a region table), or — ``via: account`` — ``key`` holds an
    account ID that the account link table resolves to its holder (a loan or account attributes per
    account), or — ``via: link`` — ``key`` holds the ID of a row of the link table (its column ``link_key``,
    default the same name; cards issued per disposition). The attached columns (with ``prefix``) become
    customer fields, features or labels; when several rows reach one customer the ``first`` (file order) or
    ``last`` is kept and the rest counted."""

    model_config = ConfigDict(extra="forbid")

    key: str
    on: str | None = None
    via: Literal["account", "link"] | None = None
    link_key: str | None = None
    prefix: str = ""
    several: Literal["first", "last"] = "first"


class TableMapping(BaseModel):
    """One file (or Excel sheet): its canonical table and its columns."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    file: str = ""
    table: TableName | None = None
    header_signature: str = ""
    headers: list[str] = Field(default_factory=list)
    columns: list[ColumnMapping] = Field(default_factory=list)
    derived: list[DerivedColumn] = Field(default_factory=list)
    #: a generated customer_id for a file without one: ``row`` (the file row) or a list of columns whose
    #: values together identify a customer (a short hash of them)
    key: Literal["row"] | list[str] | None = None
    join: JoinSpec | None = None  # table ``attach`` only
    # proposal details (never saved)
    format: dict[str, str] = Field(default_factory=dict, exclude=True)
    saved_as: str | None = Field(default=None, exclude=True)  # name of the saved mapping re-applied

    @model_validator(mode="after")
    def _signature(self) -> TableMapping:
        if self.headers and not self.header_signature:
            object.__setattr__(self, "header_signature", parsing.header_signature(self.headers))
        return self

    def column(self, source: str) -> ColumnMapping:
        for c in self.columns:
            if c.source == source:
                return c
        raise KeyError(source)

    def targets(self) -> dict[str, str]:
        """Canonical field → source header, for key and field columns (and canonical labels)."""
        fields = {c.name for c in target_table(self.table).columns} if self.table else set()
        return {c.target: c.source for c in self.columns
                if c.role != "ignore" and c.target and c.target in fields}

    def missing_required(self) -> list[str]:
        """Required canonical fields no column (or derived column) provides; events count account_id as key."""
        if self.table is None:
            return []
        have = set(self.targets()) | {d.name for d in self.derived}
        if self.key is not None:
            have.add("customer_id")
        if self.table in EVENT_TABLES and "account_id" in have:
            have.add("customer_id")
        return [f for f in required_fields(self.table) if f not in have]

    def _name(self, name: str) -> str:
        """A column's name on the customers table (an attached table's columns carry its join prefix)."""
        return f"{self.join.prefix}{name}" if self.join is not None and self.join.prefix else name

    def labels(self) -> dict[str, str]:
        """Output name → kind of every label column (mapped or derived)."""
        out = {c.output: c.kind or "" for c in self.columns if c.role == "label"}
        out.update({spec.name: spec.kind for c in self.columns for spec in c.labels})
        out.update({d.name: d.kind or "" for d in self.derived if d.role == "label"})
        return {self._name(k): v for k, v in out.items()}

    def label_roles(self) -> dict[str, str]:
        """Label name → role, for the labels that declare one."""
        out = {c.output: c.label_role for c in self.columns if c.role == "label" and c.label_role}
        out.update({spec.name: spec.role for c in self.columns for spec in c.labels if spec.role})
        return {self._name(k): v for k, v in out.items()}

    def protected(self) -> list[str]:
        """Output columns marked ``protected: true``."""
        return [self._name(c.output or c.source) for c in self.columns if c.protected and c.role != "ignore"]

    def account_keyed(self) -> bool:
        return self.table in EVENT_TABLES and "account_id" in self.targets() and "customer_id" not in self.targets()


class LinkSpec(BaseModel):
    """How account-keyed events reach customers through the ``account_links`` table: to the holders whose
    role is in ``roles`` (compared after ``schema.HOLDER_ROLES``; a link table without a role column makes
    every holder eligible); an account with several eligible holders gives its events to the ``first`` one
    (in file order) or to ``all`` of them."""

    model_config = ConfigDict(extra="forbid")

    roles: list[str] = Field(default_factory=lambda: ["owner"])
    several: Literal["first", "all"] = "first"


class Mapping(BaseModel):
    """All tables of one load (see the module doc); saved as YAML by :meth:`to_yaml`."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    format: Literal["profile_core.mapping"] = FORMAT
    version: int = FORMAT_VERSION
    name: str | None = None
    saved_at: str | None = None
    tables: list[TableMapping] = Field(default_factory=list)
    link: LinkSpec = Field(default_factory=LinkSpec)
    #: lines whose field count differs from the header, and rows missing a required value: "refuse" (an
    #: error naming the first) or "skip" (left out, counted in a warning); None = refuse.
    bad_rows: Literal["refuse", "skip"] | None = None
    #: the data set's currency (ISO code such as CZK, CNY, EUR), shown on cards and reports
    currency: str | None = Field(default=None, pattern=r"^[A-Z]{3}$")
    #: a customers column holding each row's observation date (e.g. a loan's grant date): its features are
    #: computed as of that date and no later event enters them
    observation_date: str | None = None

    @field_validator("version")
    @classmethod
    def _supported(cls, v: int) -> int:
        if v > FORMAT_VERSION:
            raise ValueError(f"mapping format version {v} is newer than this program ({FORMAT_VERSION})")
        return v

    # -- lookup -----------------------------------------------------------------------------------------
    def match(self, file: str, headers: list[str]) -> TableMapping | None:
        """The TableMapping for a file, by its header, never by its name: the same header signature, else (a
        hand-written table without ``headers``/``header_signature``) one whose every used source column is
        among ``headers``. ``file`` (the upload's name) plays no part: a renamed export still matches."""
        sig = parsing.header_signature(headers)
        for tm in self.tables:
            if tm.header_signature == sig:
                return tm
        have = {normalize_header(h) for h in headers}
        for tm in self.tables:
            if tm.header_signature or not tm.columns:
                continue
            used = {normalize_header(c.source) for c in tm.columns if c.role != "ignore"}
            if used and used <= have:
                return tm
        return None

    def labels(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for tm in self.tables:
            out.update(tm.labels())
        return out

    def label_roles(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for tm in self.tables:
            out.update(tm.label_roles())
        return out

    def protected(self) -> list[str]:
        return [c for tm in self.tables for c in tm.protected()]

    # -- checks -----------------------------------------------------------------------------------------
    def problems(self) -> list[Issue]:
        """What stops this mapping from loading (errors) or deserves a look (warnings), in both languages."""
        issues: list[Issue] = []
        has_links = any(tm.table == LINK_TABLE for tm in self.tables)
        for tm in self.tables:
            f = tm.file or tm.header_signature
            if tm.table is None:
                issues.append(issue("no_table", f, area="mapping"))
                continue
            missing = tm.missing_required()
            if missing:
                issues.append(issue("missing_required", f, columns=missing, area="mapping",
                                     table=Msg(f"mapping.table.{tm.table}")))
            seen: dict[str, str] = {}
            for c in tm.columns:
                out = c.output
                if out is None:
                    continue
                if out in seen:
                    issues.append(issue("duplicate_target", f, column=out, area="mapping", header=c.source,
                                         first=seen[out]))
                seen.setdefault(out, c.source)
                if c.role == "label" and c.kind is None:
                    issues.append(issue("label_kind_missing", f, column=out, area="mapping"))
                if c.role == "label" and tm.table not in ("customers", ATTACH) and out not in CANONICAL_LABELS:
                    issues.append(issue("label_on_events", f, column=out, area="mapping"))
            for c in tm.columns:
                for spec in c.labels:
                    if spec.name in seen:
                        issues.append(issue("duplicate_target", f, column=spec.name, area="mapping",
                                            header=c.source, first=seen[spec.name]))
                    seen.setdefault(spec.name, c.source)
                    if tm.table not in ("customers", ATTACH) and spec.name not in CANONICAL_LABELS:
                        issues.append(issue("label_on_events", f, column=spec.name, area="mapping"))
            if tm.table == ATTACH and tm.join is None:
                issues.append(issue("join_missing", f, area="mapping"))
            if tm.join is not None and tm.join.via in ("account", "link") and not has_links:
                issues.append(issue("no_link_table", f, area="mapping"))
            if tm.key is not None:
                issues.append(issue("key_generated", f, area="mapping", severity="warning",
                                    value=tm.key if isinstance(tm.key, str) else ", ".join(tm.key)))
            if tm.key is not None and "customer_id" in tm.targets():
                issues.append(issue("key_twice", f, area="mapping", header=tm.targets()["customer_id"]))
            if isinstance(tm.key, list):
                for k in tm.key:
                    if tm.headers and k not in tm.headers:
                        issues.append(issue("key_source_missing", f, area="mapping", header=k))
            if tm.account_keyed() and not has_links:
                issues.append(issue("no_link_table", f, area="mapping"))
        return issues

    def errors(self) -> list[Issue]:
        return [i for i in self.problems() if i.severity == "error"]

    # -- files ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data = self.model_dump(mode="json", exclude_defaults=False)
        for tm in data["tables"]:  # keep the file small: drop empty/default per-column options
            tm["columns"] = [{k: v for k, v in c.items() if v not in (None, False, {}, [])} for c in tm["columns"]]
            for key in ("key", "join"):
                if tm.get(key) is None:
                    tm.pop(key, None)
            if tm.get("join"):
                tm["join"] = {k: v for k, v in tm["join"].items() if v not in (None, "") and (k, v) != ("several", "first")}
            if not tm["derived"]:
                del tm["derived"]
            else:
                tm["derived"] = [{k: v for k, v in d.items() if v not in (None, [], {})} for d in tm["derived"]]
        if not any(tm.table == LINK_TABLE for tm in self.tables) and self.link == LinkSpec():
            del data["link"]
        if data.get("saved_at") is None:
            data.pop("saved_at", None)
        for key in ("name", "bad_rows", "currency", "observation_date"):  # optional settings: only when set
            if key in data and data[key] is None:
                del data[key]
        return data

    def to_yaml(self, *, annotated: bool = False, lang: str = "en") -> str:
        """The mapping as YAML. ``annotated``: one line per column (flow style) with the proposal's confidence,
        reason and sample values as a comment, and each table's problems as comments above it — what
        ``python -m profile_core propose`` writes for a person to edit. Comments never change the mapping."""
        if annotated:
            return self._annotated_yaml(lang)
        head = ("# 客户全景画像 列映射 / Customer Panorama column mapping — format profile_core.mapping, version 1.\n"
                "# 可手工编辑 / editable by hand. role: key | field | feature | label (kind: regression |\n"
                "# binary | multiclass) | ignore; parse options: date_format, decimal_comma, codes. Files whose header\n"
                "# has the same header_signature get this mapping again automatically.\n")
        return head + yaml.safe_dump(self.to_dict(), allow_unicode=True, sort_keys=False, default_flow_style=None,
                                     width=110)

    def _annotated_yaml(self, lang: str) -> str:
        data = self.to_dict()
        by_file: dict[str, list[Issue]] = {}
        for i in sorted(self.problems(), key=lambda i: i.severity != "error"):
            by_file.setdefault(i.file, []).append(i)
        out = [_YAML_HEAD.rstrip("\n")]
        out += [_yaml_kv(k, v) for k, v in data.items() if k not in ("tables", "link")]
        out.append("tables:")
        for tm, td in zip(self.tables, data["tables"], strict=True):
            out.append(f"# ---- {_one_line(tm.file or tm.header_signature)} → {tm.table or '?'}")
            for i in by_file.get(tm.file or tm.header_signature, []):
                out.append(f"# {i.severity.upper()}: {_one_line(i.message(lang))}")
            rest = [(k, v) for k, v in td.items() if k not in ("columns", "derived")]
            for j, (k, v) in enumerate(rest):
                out.append(("- " if j == 0 else "  ") + _yaml_kv(k, v))
            out.append("  columns:")
            for cm, cd in zip(tm.columns, td["columns"], strict=True):
                sample = ", ".join(cm.samples[:3])
                note = f"{cm.confidence:.2f} {cm.reason_text(lang)}" + (f" | e.g. {sample}" if sample else "")
                out.append(f"  - {_flow(cd)}  # {_one_line(note)}")
            if td.get("derived"):
                out.append("  derived:")
                out += [f"  - {_flow(d)}" for d in td["derived"]]
        if "link" in data:
            out.append(_yaml_kv("link", data["link"]))
        return "\n".join(out) + "\n"

    @classmethod
    def from_text(cls, text: str, *, source: str = "mapping") -> Mapping:
        """A mapping from YAML (or JSON, which is YAML) text; MappingError when it is not one."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise MappingError("mapping.file_invalid", file=source, detail=str(e).splitlines()[0]) from e
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise MappingError("mapping.file_invalid", file=source, detail=f"format is not {FORMAT}")
        if isinstance(data.get("version"), int) and data["version"] > FORMAT_VERSION:
            raise MappingError("mapping.file_version", file=source, version=data["version"], supported=FORMAT_VERSION)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise MappingError("mapping.file_invalid", file=source, detail=f"{where}: {err['msg']}") from e

    @classmethod
    def load(cls, path: str | Path) -> Mapping:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except OSError as e:
            raise MappingError("mapping.file_invalid", file=path.name, detail=e.strerror or type(e).__name__) from e
        return cls.from_text(text, source=path.name)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_yaml(), encoding="utf-8")
        tmp.replace(path)
        return path


_YAML_HEAD = ("# 客户全景画像 列映射 / Customer Panorama column mapping — format profile_core.mapping, version 1.\n"
              "# Edit, then: python -m profile_core load FILES --mapping THIS.yaml. One line per source column:\n"
              "#   role: key | field | feature | label (kind: regression | binary | multiclass) | ignore;\n"
              "#   parse options: date_format, decimal_comma, codes. Comments (# …) show the proposal's confidence,\n"
              "#   reason and sample values, and each table's problems; a file matches by its header, not its name.\n")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _flow(obj: object) -> str:
    """``obj`` as one line of YAML (flow style)."""
    text = yaml.safe_dump(obj, allow_unicode=True, default_flow_style=True, sort_keys=False, width=1 << 30)
    return text.removesuffix("\n...\n").strip()


def _yaml_kv(key: str, value: object) -> str:
    return f"{key}: {_flow(value)}"


# ---- proposing ---------------------------------------------------------------------------------------
@dataclass
class _Profile:
    n: int
    distinct: int
    unique_ratio: float
    numeric: bool
    decimal_comma: bool
    has_decimals: bool
    is_datetime: bool
    date_strong: str | None
    date_weak: str | None
    generic_date: bool
    values: list[str]
    samples: list[str]
    leading_zero: bool
    id_like: bool  # short, no spaces
    unique_all: bool = False  # every present value of the WHOLE column differs (not just the sample)
    min_class: int = 0  # rows of the rarest value (whole column; 0 when more than 20 distinct)


def _profile(s: pd.Series) -> _Profile:
    whole = s.dropna()
    unique_all = bool(len(whole)) and bool(parsing.as_text(whole).is_unique)
    counts = parsing.as_text(whole).value_counts() if whole.nunique() <= 20 else None
    min_class = int(counts.min()) if counts is not None and len(counts) else 0
    s = s.iloc[:PROPOSE_ROWS]
    is_dt = pd.api.types.is_datetime64_any_dtype(s)
    txt = parsing.as_text(s) if not is_dt else s.astype("str").where(s.notna())
    present = txt.dropna()
    present = present[present != ""]
    n = len(present)
    distinct = int(present.nunique())
    decimal_comma = parsing.sniff_decimal_comma(s) if n else False
    if pd.api.types.is_bool_dtype(s):
        num = s.astype("float64")
    elif pd.api.types.is_numeric_dtype(s):
        num = s.astype("float64")
    elif decimal_comma:
        num = parsing.parse_decimal_comma(present)
    else:
        num = pd.to_numeric(present, errors="coerce")
    numeric = bool(n) and not is_dt and bool(num.dropna().size == n)
    leading_zero = bool(present.str.match(r"^-?0\d").any()) if n and not is_dt else False
    has_decimals = numeric and bool((num.dropna() % 1 != 0).any())
    strong = parsing.sniff_date_format(s) if n and not is_dt else None
    weak = strong or (parsing.sniff_date_format(s, weak=True) if n and not is_dt else None)
    generic = False
    if n and not is_dt and not strong and not numeric:
        sample = present.iloc[:200]
        generic = bool(to_datetime(sample).notna().mean() >= 0.9)
    uniques = present.drop_duplicates()
    values = sorted(uniques.tolist(), key=str) if distinct <= 20 else []
    id_like = bool(n) and not is_dt and not present.str.contains(r"\s", regex=True).any() \
        and present.str.len().max() <= 32
    return _Profile(n, distinct, distinct / n if n else 0.0, numeric and not leading_zero, decimal_comma, has_decimals,
                    is_dt, strong, weak, generic, values, [str(v) for v in uniques.iloc[:5]], leading_zero, id_like,
                    unique_all, min_class)


@dataclass
class _Candidate:
    source: str
    field: str
    confidence: float
    reason: str
    values: dict[str, str]


def _is_cjk(text: str) -> bool:
    return bool(re.search(r"[\u3400-\u9fff]", text))


def _name_match(header: str, col: Column) -> tuple[float, str, dict[str, str]] | None:
    """Best name evidence that ``header`` is ``col``: alias (1.0), contains an alias (0.7–0.75), similar
    name (difflib ratio ≥ 0.8 → 0.68–0.85)."""
    h = normalize_header(header)
    best: tuple[float, str, dict[str, str]] | None = None
    for alias in (col.name, col.zh, col.en, *col.aliases):
        a = normalize_header(alias)
        if not a:
            continue
        if h == a:
            return 1.0, "mapping.reason.alias", {"alias": alias}
        if _is_cjk(a) and len(a) >= 2 and a in h:
            cand = (0.75, "mapping.reason.contains", {"alias": alias})
        elif len(a) >= 4 and re.search(rf"(^|_){re.escape(a)}(_|$)", h):
            cand = (0.7, "mapping.reason.contains", {"alias": alias})
        else:
            ratio = difflib.SequenceMatcher(None, h, a).ratio()
            if ratio < 0.8:
                continue
            cand = (round(0.85 * ratio, 2), "mapping.reason.similar", {"alias": alias})
        if best is None or cand[0] > best[0]:
            best = cand
    return best


ID_HINTS = ("id", "no", "nr", "num", "number", "code", "key", "cif", "编号", "号", "代码")


def _id_hint(header: str) -> bool:
    h = normalize_header(header)
    return any(re.search(rf"(^|_){w}(_|$|\d)", h) or (_is_cjk(w) and w in h) for w in ID_HINTS)


#: two-value codes whose second element means "yes / bad / default" (compared as parsing.code_key)
_BAD_CODES = {frozenset({"1", "2"}): "2", frozenset({"good", "bad"}): "bad", frozenset({"g", "b"}): "b",
              frozenset({"yes", "no"}): "yes", frozenset({"y", "n"}): "y", frozenset({"true", "false"}): "true",
              frozenset({"t", "f"}): "t", frozenset({"是", "否"}): "是", frozenset({"违约", "正常"}): "违约",
              frozenset({"default", "paid"}): "default", frozenset({"bad", "ok"}): "bad"}
MIN_CLASS_ROWS = 20  # a label with fewer rows of some value is not proposed (nothing to learn from)


def binary_codes(values: list[str]) -> dict[str, str] | None:
    """Codes that read a two-value label as 0/1 when its values are not already 0/1: 1/2 (2 = bad), good/bad,
    yes/no, Y/N …; an unknown pair maps its values in sorted order to 0 and 1. None when no codes are
    needed (already 0/1 values) or when there are not exactly two values."""
    if len(values) != 2:
        return None
    keys = {parsing.code_key(v): str(v) for v in values}
    if set(keys) <= {"0", "1"}:
        return None
    bad = _BAD_CODES.get(frozenset(keys))
    if bad is None:
        if all(k in FLAG_VALUES for k in keys) and {FLAG_VALUES[k] for k in keys} == {0, 1}:
            return None
        bad = sorted(keys)[1]
    return {keys[k]: ("1" if k == bad else "0") for k in keys}


def _date_hint(header: str) -> bool:
    h = normalize_header(header)
    return any(re.search(rf"(^|_){d}(_|$|\d)", h) or (_is_cjk(d) and d in h) for d in DATE_HINTS)


def _fits(col: Column, p: _Profile, table: str, header: str) -> bool:
    """Does the content agree with the field's kind?"""
    if p.n == 0:
        return True
    if col.kind == "id":
        if p.has_decimals or p.is_datetime:
            return False
        if table == "customers" and col.name == "customer_id":  # the whole column, never a binary code
            return p.unique_all and not (p.distinct <= 2 and all(parsing.code_key(v) in FLAG_VALUES for v in p.values))
        return True
    if col.kind in ("datetime", "date"):
        return p.is_datetime or bool(p.date_strong or p.date_weak or p.generic_date)
    if col.kind in ("float", "int"):
        return p.numeric or p.decimal_comma
    if col.kind == "flag":
        return p.distinct <= 2 and all(parsing.code_key(v) in FLAG_VALUES for v in p.values)
    return True


def _label_kind(p: _Profile) -> str:
    if p.distinct <= 2:
        return "binary"
    if p.numeric and p.distinct > 10:
        return "regression"
    return "multiclass"


def _column_options(cm: ColumnMapping, col: Column | None, p: _Profile, header: str) -> None:
    """Parse options from the content: date format, decimal comma, gender codes (in place)."""
    wants_date = (col is not None and col.kind in ("datetime", "date")) or (col is None and (
        p.date_strong or (p.date_weak and _date_hint(header))))
    if wants_date and not p.is_datetime:
        fmt = p.date_strong or p.date_weak
        if fmt:
            cm.date_format = fmt
    numeric_target = (col is not None and col.kind in ("float", "int")) or (
        cm.role == "label" and cm.kind == "regression") or (col is None and cm.role == "feature")
    if numeric_target and p.decimal_comma:
        cm.decimal_comma = True
    if col is not None and col.name == "gender" and p.values:
        keys = {v: GENDER_VALUES.get(v.lower()) for v in p.values}
        if all(keys.values()) and any(k not in ("男", "女") for k in keys):
            cm.codes = {k: v for k, v in keys.items() if k not in ("男", "女")}


def propose_mapping(table: str | None, frame: pd.DataFrame, file_name: str = "") -> TableMapping:
    """A proposed TableMapping for a raw frame (as ``ingest.read_table_file`` returns it).

    ``table`` None: guessed — by the same rules as a plain load (file name, aliases), then link tables
    (account and customer IDs only), then the table whose required fields the columns fill best."""
    headers = [str(h) for h in frame.columns]
    profiles = {h: _profile(frame[h]) for h in headers}
    if table is None:
        table = _guess_table(headers, profiles, file_name)
    columns = _propose_columns(table, headers, profiles) if table else [
        _fallback(h, profiles[h]) for h in headers]
    derived = _propose_derived(table, columns, profiles)
    fmt = dict(frame.attrs.get("format", {}))
    key = None
    if table == "customers" and not any(c.target == "customer_id" and c.role == "key" for c in columns):
        key = "row"  # no column identifies a customer: one per row, with a generated ID (a warning says so)
    return TableMapping(file=file_name, table=table, headers=headers, columns=columns, derived=derived, format=fmt,
                        key=key)


def _propose_derived(table: str | None, columns: list[ColumnMapping],
                     profiles: dict[str, _Profile]) -> list[DerivedColumn]:
    """A birth-date column of a customers file without an age: ignored itself, age derived from it."""
    if table != "customers" or any(c.target == "age" and c.role != "ignore" for c in columns):
        return []
    for c in columns:
        dated = c.date_format or profiles[c.source].is_datetime or profiles[c.source].generic_date
        if c.role == "feature" and dated and any(w in normalize_header(c.source) for w in BIRTH_HINTS):
            c.role, c.reason, c.reason_values, c.confidence = "ignore", "mapping.reason.birth_date", {}, 0.6
            if c.target is not None:
                c.target = None
            return [DerivedColumn(name="age", op="age", source=c.source, role="field")]
    return []


def _guess_table(headers: list[str], profiles: dict[str, _Profile], file_name: str) -> str | None:
    stem = normalize_header(file_name.rsplit("/", 1)[-1].split(".", 1)[0]) if file_name else ""
    named = stem in {normalize_header(a) for a in (LINK_TABLE, ACCOUNT_LINKS.zh, ACCOUNT_LINKS.en,
                                                   *ACCOUNT_LINKS.aliases)}
    amap = alias_map(ACCOUNT_LINKS)
    mapped = {amap.get(normalize_header(h)) for h in headers}
    if {"account_id", "customer_id"} <= mapped and (named or len(headers) <= 4):
        return LINK_TABLE
    plain = resolve_table(headers, file_name)
    if plain is not None:
        return plain
    best, best_score = None, 0.0
    for name in TABLE_NAMES[:-1]:  # an attached table is never guessed: the user says what it joins on
        score = _table_score(name, _propose_columns(name, headers, profiles), profiles)
        if score > best_score:
            best, best_score = name, score
    if best is None and not any(p.is_datetime or p.date_strong for p in profiles.values()):
        return "customers"  # no key, no event time: one row per customer (a flat file; the key is generated)
    return best


def _table_score(table: str, cols: list[ColumnMapping], profiles: dict[str, _Profile]) -> float:
    """How well proposed columns fill ``table``: required fields weigh 2 × confidence (a missing one −2, a
    missing key of an event table −1), other fields 0.5 × confidence; a customers key must be unique."""
    conf = {c.target: c.confidence for c in cols if c.role in ("key", "field", "label") and c.target}
    key_col = next((c.source for c in cols if c.role == "key"), None)
    if table in EVENT_TABLES and "account_id" in conf:
        conf.setdefault("customer_id", conf["account_id"])
    score = 0.0
    for r in required_fields(table):
        score += 2 * conf[r] if r in conf else (-1.0 if r == "customer_id" and table in EVENT_TABLES else -2.0)
    score += sum(0.5 * v for k, v in conf.items() if k not in required_fields(table) and k != "account_id")
    if table == "customers" and key_col is not None and profiles[key_col].unique_ratio < 0.95:
        score -= 3.0
    return score


def _propose_columns(table: str, headers: list[str], profiles: dict[str, _Profile]) -> list[ColumnMapping]:
    spec = target_table(table)
    cands: list[_Candidate] = []
    for h in headers:
        for col in spec.columns:
            m = _name_match(h, col)
            if m is None:
                continue
            conf, reason, values = m
            p = profiles[h]
            if conf < 1.0 and col.kind in ("category", "text") and p.numeric:
                continue  # name likeness never sends numbers to a category field (Duration ≠ education)
            if col.name in CANONICAL_LABELS and col.name != "credit_score" and p.n and p.min_class < MIN_CLASS_ROWS:
                continue  # a label with fewer than 20 rows of a class is not proposed
            if not _fits(col, profiles[h], table, h):
                if conf < 1.0:
                    continue
                conf, reason = 0.6, "mapping.reason.alias_content"
            cands.append(_Candidate(h, col.name, conf, reason, values))
    chosen: dict[str, _Candidate] = {}
    used: set[str] = set()
    for c in sorted(cands, key=lambda c: -c.confidence):
        if c.source in chosen or c.field in used:
            continue
        chosen[c.source] = c
        used.add(c.field)
    _content_candidates(table, spec, headers, profiles, chosen, used)
    out = []
    for h in headers:
        p = profiles[h]
        c = chosen.get(h)
        if c is None:
            out.append(_fallback(h, p))
            continue
        col = spec.column(c.field)
        role = "key" if c.field in KEYS else "label" if c.field in CANONICAL_LABELS else "field"
        cm = ColumnMapping(source=h, target=c.field, role=role, confidence=c.confidence, reason=c.reason,
                           reason_values=c.values, samples=p.samples)
        _column_options(cm, col, p, h)
        if role == "label" and cm.kind == "binary" and not cm.codes:
            cm.codes = binary_codes(p.values) or {}
        out.append(cm)
    return out


def _content_candidates(table: str, spec: Table, headers: list[str], profiles: dict[str, _Profile],
                        chosen: dict[str, _Candidate], used: set[str]) -> None:
    """Fill still-unmapped key, time and amount fields from the content alone (in place)."""
    free = [h for h in headers if h not in chosen]
    if table == "customers" and "customer_id" not in used:
        for h in free:
            p = profiles[h]
            if p.n and p.unique_all and p.distinct > 2 and p.id_like and not p.has_decimals and not p.is_datetime \
                    and not p.date_strong and (not p.numeric or _id_hint(h)):  # a unique measure is no ID
                chosen[h] = _Candidate(h, "customer_id", 0.45, "mapping.reason.content_id", {})
                used.add("customer_id")
                free.remove(h)
                break
    time_col = spec.time_column
    if time_col and time_col not in used:
        for h in free:
            p = profiles[h]
            fmt = p.date_strong or (p.date_weak if _date_hint(h) else None)
            if p.is_datetime or fmt:
                chosen[h] = _Candidate(h, time_col, 0.5, "mapping.reason.content_date", {"format": fmt or ""})
                used.add(time_col)
                free.remove(h)
                break
    if table == "transactions" and "amount" not in used:
        for h in free:
            p = profiles[h]
            if p.numeric and (p.has_decimals or p.decimal_comma) and not p.date_weak:
                chosen[h] = _Candidate(h, "amount", 0.4, "mapping.reason.content_amount", {})
                used.add("amount")
                break
    if table == "transactions" and "direction" not in used:  # in/out words (PRIJEM/VYDAJ, C/D …) by content
        for h in headers:
            p = profiles[h]
            seen = {DIRECTION_VALUES.get(str(v).strip().lower()) for v in p.values}
            if p.values and None not in seen and seen == {"in", "out"}:
                old = chosen.get(h)
                if old is not None:
                    used.discard(old.field)
                chosen[h] = _Candidate(h, "direction", 0.8, "mapping.reason.content_direction", {})
                used.add("direction")
                break


def _fallback(header: str, p: _Profile) -> ColumnMapping:
    """A column no canonical field claimed: label (by name), feature (numbers, dates, categories) or ignore."""
    h = normalize_header(header)
    if p.distinct == 2 and p.min_class >= MIN_CLASS_ROWS and any(
            re.search(rf"(^|_){re.escape(w)}(_|$)", h) or (_is_cjk(w) and w in h) for w in LABEL_HINTS):
        cm = ColumnMapping(source=header, role="label", kind="binary", confidence=0.5,
                           reason="mapping.reason.label_name", samples=p.samples, codes=binary_codes(p.values) or {})
    elif p.is_datetime or p.date_strong or (p.date_weak and _date_hint(header)):
        cm = ColumnMapping(source=header, role="feature", confidence=0.5, reason="mapping.reason.dates",
                           reason_values={"format": p.date_strong or p.date_weak or ""}, samples=p.samples)
    elif p.numeric or p.decimal_comma:
        cm = ColumnMapping(source=header, role="feature", confidence=0.6, reason="mapping.reason.numeric",
                           samples=p.samples)
    elif p.distinct > 10 and p.unique_ratio >= 0.9:
        cm = ColumnMapping(source=header, role="ignore", confidence=0.6, reason="mapping.reason.free_text",
                           reason_values={"count": str(p.distinct)}, samples=p.samples)
    elif p.n == 0:
        cm = ColumnMapping(source=header, role="ignore", confidence=0.8, reason="mapping.reason.empty",
                           samples=p.samples)
    elif p.distinct <= MAX_CATEGORY_LEVELS:
        cm = ColumnMapping(source=header, role="feature", confidence=0.6, reason="mapping.reason.category",
                           reason_values={"count": str(p.distinct)}, samples=p.samples)
    else:
        cm = ColumnMapping(source=header, role="ignore", confidence=0.6, reason="mapping.reason.free_text",
                           reason_values={"count": str(p.distinct)}, samples=p.samples)
    _column_options(cm, None, p, header)
    return cm


def propose_files(files: list[tuple[str, bytes | str | Path]], *,
                  store: MappingStore | str | Path | None = None) -> tuple[Mapping, list[Issue]]:
    """Read every file (each Excel sheet apart) and propose one Mapping for the load; files whose header
    matches a saved mapping in ``store`` get that mapping back (``saved_as`` says which). Returns the
    mapping and the files that could not be read (as issues)."""
    store = as_store(store)
    tables: list[TableMapping] = []
    unreadable: list[Issue] = []
    raws: dict[str, pd.DataFrame] = {}
    link: LinkSpec | None = None
    for name, data in files:
        try:
            sheets = read_sheets(name, data, bad_rows="skip")  # the load itself reports damaged lines
        except IngestError as e:
            unreadable.append(e.issue)
            continue
        for label, guess_name, raw in sheets:
            raws[label] = raw
            found = store.find(list(map(str, raw.columns))) if store else None
            if found is not None:
                tm, saved = found
                tm = tm.model_copy(update={"file": label, "saved_as": saved.name or "",
                                           "format": dict(raw.attrs.get("format", {}))}, deep=True)
                _attach_samples(tm, raw)
                link = link or saved.link
                tables.append(tm)
            else:
                tables.append(propose_mapping(None, raw, guess_name if guess_name != name else label))
                tables[-1].file = label
    _propose_attachments(tables, raws)
    return Mapping(tables=tables, link=link or LinkSpec()), unreadable


def _as_attached(tm: TableMapping, join: JoinSpec, key_source: str | None = None) -> None:
    """Turn a proposed table into an ``attach`` table (in place): its fields become features under their own
    names (dates keep their format), the key column stays."""
    cols = []
    for c in tm.columns:
        if c.source == key_source or (c.role == "key" and c.target == "account_id"):
            cols.append(c)
        elif c.role in ("field", "key"):
            cols.append(ColumnMapping(**{**dict(c), "role": "feature", "target": None,
                                         "reason": "mapping.reason.attached", "reason_values": {}}))
        else:
            cols.append(c)
    object.__setattr__(tm, "columns", cols)
    object.__setattr__(tm, "table", ATTACH)
    object.__setattr__(tm, "key", None)
    object.__setattr__(tm, "join", join)
    object.__setattr__(tm, "derived", [])


def _prefix(file: str) -> str:
    stem = normalize_header(Path(file.rsplit(" [", 1)[-1].rstrip("]")).stem)
    return f"{stem}_" if stem else ""


def _propose_attachments(tables: list[TableMapping], raws: dict[str, pd.DataFrame]) -> None:
    """Files that are not customers or events but attach to them: an account-keyed file with one row per
    account (a loan per account) joins through the link table; a file without a customer ID whose column
    holds every value of a customers column (a region table keyed by the region code) is a lookup."""
    has_link = any(tm.table == LINK_TABLE for tm in tables)
    keyed = [tm for tm in tables if tm.table == "customers" and tm.key is None and tm.saved_as is None]
    link_ids = {}  # non-key columns of the link table (a disposition ID) → their values
    for lt in tables:
        if lt.table == LINK_TABLE and lt.file in raws:
            link_ids.update({c.source: set(parsing.as_text(raws[lt.file][c.source]).dropna())
                             for c in lt.columns if c.role != "key" and c.target != "holder_role"})
    for tm in tables:
        raw = raws.get(tm.file)
        if tm.saved_as is not None or raw is None:
            continue
        shared = [h for h in raw.columns if h in link_ids and tm.table not in (LINK_TABLE, ATTACH)
                  and not any(c.source == h and c.role == "key" for c in tm.columns)]
        if shared and set(parsing.as_text(raw[shared[0]]).dropna()) <= link_ids[shared[0]]:
            _as_attached(tm, JoinSpec(key=shared[0], via="link", prefix=_prefix(tm.file)), key_source=shared[0])
            for lt in tables:  # the link table must keep that column for the join
                if lt.table == LINK_TABLE:
                    for j, c in enumerate(lt.columns):
                        if c.source == shared[0] and c.role == "ignore":
                            lt.columns[j] = ColumnMapping(**{**dict(c), "role": "feature"})
            continue
        if has_link and tm.table in EVENT_TABLES and tm.account_keyed():
            acc = parsing.as_text(raw[tm.targets()["account_id"]]).dropna()
            if len(acc) and acc.is_unique:
                _as_attached(tm, JoinSpec(key="account_id", via="account", prefix=_prefix(tm.file)))
            continue
        if tm.table != "customers" or tm.key != "row":
            continue
        for cust in keyed:
            craw = raws.get(cust.file)
            if craw is None:
                continue
            candidates = [(c.output, c.source) for c in cust.columns if c.role in ("feature", "field") and c.output]
            match = _lookup_column(raw, craw, candidates)
            if match is not None:
                source, on = match
                _as_attached(tm, JoinSpec(key=source, on=on, prefix=_prefix(tm.file)), key_source=source)
                break


def _lookup_column(raw: pd.DataFrame, craw: pd.DataFrame, candidates: list[tuple[str, str]]) -> tuple[str, str] | None:
    """(column of ``raw`` whose unique values cover a customers column, that column's output name)."""
    for h in raw.columns:
        vals = parsing.as_text(raw[h]).dropna()
        if len(vals) < 2 or not vals.is_unique:
            continue
        have = set(vals)
        for out, source in candidates:
            cvals = set(parsing.as_text(craw[source]).dropna().unique()) if source in craw else set()
            if len(cvals) >= 2 and cvals <= have and not parsing.as_text(craw[source]).dropna().is_unique:
                return str(h), out
    return None


def _attach_samples(tm: TableMapping, raw: pd.DataFrame) -> None:
    for c in tm.columns:
        if c.source in raw:
            c.samples = [str(v) for v in parsing.as_text(raw[c.source].iloc[:PROPOSE_ROWS]).dropna().unique()[:5]]
            c.confidence, c.reason, c.reason_values = 1.0, "mapping.reason.saved", {}


# ---- applying ----------------------------------------------------------------------------------------
def apply_mapping(frame: pd.DataFrame, mapping: TableMapping, report: ValidationReport | None = None, *,
                  file: str | None = None) -> pd.DataFrame:
    """Raw frame → frame in canonical columns (key/field targets), features and labels under their output
    names, derived columns last; the index (file rows) is kept. Dates, decimal commas, codes and label
    kinds are parsed here; other values are left for ``ingest`` to coerce and check. Values that do not
    parse go to ``report`` (with file and row) when one is given."""
    file = file or mapping.file
    out = pd.DataFrame(index=frame.index)
    parsed: dict[str, pd.Series] = {}
    spec = target_table(mapping.table) if mapping.table else None
    derived_sources = {d.source for d in mapping.derived}
    for cm in mapping.columns:
        if cm.role == "ignore" and cm.source not in derived_sources and not cm.labels:
            continue
        col = _spec_column(spec, cm)
        if cm.source not in frame:
            if cm.role != "ignore" and report is not None:
                req = col is not None and col.required
                report.issues.append(issue("source_missing", file, column=cm.output, header=cm.source,
                                            area="mapping", severity="error" if req else "warning"))
            continue
        s = _parse_column(frame[cm.source], cm, col, file, report)
        parsed[cm.source] = s
        if cm.output is not None and cm.output not in out:
            out[cm.output] = s
        if cm.birth_number is not None and cm.birth_number.sex:
            bn = cm.birth_number
            _, sex = parsing.parse_birth_number(frame[cm.source], female_month_offset=bn.female_month_offset,
                                                pivot=cm.pivot)
            out[bn.sex] = sex.map({"F": bn.female, "M": bn.male}).astype("str")
        for ls in cm.labels:
            out[ls.name] = _label_values(frame[cm.source], ls, file, report)
    if mapping.key is not None and "customer_id" not in out:
        out.insert(0, "customer_id", generated_key(frame, mapping.key))
    for d in mapping.derived:
        src = out[d.source] if d.source in out else parsed.get(d.source)
        if src is None and d.source in frame:
            src = frame[d.source]
        if src is None:
            if report is not None:
                report.issues.append(issue("source_missing", file, column=d.name, header=d.source, area="mapping"))
            continue
        out[d.name] = _derive(d, src)
    return out


def _spec_column(spec: Table | None, cm: ColumnMapping) -> Column | None:
    if spec is None or not cm.target:
        return None
    try:
        return spec.column(cm.target)
    except KeyError:
        return None


def _parse_column(s: pd.Series, cm: ColumnMapping, col: Column | None, file: str,
                  report: ValidationReport | None) -> pd.Series:
    present = s.notna()
    if cm.codes:
        coded, uncoded = parsing.apply_codes(s, cm.codes)
        if uncoded.any() and report is not None:
            first = uncoded[uncoded].index[0]
            report.issues.append(issue("uncoded_values", file, row=int(first), column=cm.output or cm.source,
                                        count=int(uncoded.sum()), value=s.at[first], area="mapping",
                                        severity="warning"))
        s = coded
    out, how = s, None
    if cm.birth_number is not None:
        out, how = parsing.parse_birth_number(s, female_month_offset=cm.birth_number.female_month_offset,
                                              pivot=cm.pivot)[0], "birth_number"
    elif cm.date_format:
        out, how = parsing.parse_dates(s, cm.date_format, pivot=cm.pivot), cm.date_format
    elif cm.thousands:
        out, how = parsing.parse_amount(s, decimal="," if cm.decimal_comma else ".", thousands=cm.thousands), "amount"
    elif cm.role == "label" and cm.kind == "binary":
        out, how = to_flag(s), "binary"
    elif cm.decimal_comma:
        out, how = parsing.parse_decimal_comma(s), "decimal_comma"
    elif cm.role == "label" and cm.kind == "regression":
        out, how = to_number(s), "number"
    elif cm.role == "label" and cm.kind == "multiclass":
        out = parsing.as_text(s)
    if cm.role == "label" and report is not None and _labels_lost(s, present & out.isna(), cm.output or cm.source,
                                                                  file, report):
        return out
    if how is not None and report is not None:
        bad = present & out.isna()
        if bad.any():
            first = bad[bad].index[0]
            req = col is not None and col.required
            report.issues.append(issue("bad_value" if req else "bad_value_optional", file, row=int(first),
                                        column=cm.output or cm.source, count=int(bad.sum()), value=s.at[first],
                                        area="mapping", how=Msg(f"mapping.how.{_how_key(how)}"),
                                        severity="error" if req else "warning"))
    return out


def _labels_lost(raw: pd.Series, lost: pd.Series, name: str, file: str, report: ValidationReport) -> bool:
    """More than 1 % of a label's present values would become missing: an error that stops the load and
    asks for codes (a 1=good/2=bad target must not lose all its bad loans)."""
    present = int(raw.notna().sum())
    if not lost.any() or lost.sum() <= 0.01 * present:
        return False
    first = lost[lost].index[0]
    values = ", ".join(str(v) for v in parsing.as_text(raw[lost]).dropna().unique()[:5])
    report.issues.append(issue("label_values_lost", file, row=int(first), column=name, count=int(lost.sum()),
                               value=values, area="mapping", total=present))
    return True


def _label_values(raw: pd.Series, spec: LabelSpec, file: str, report: ValidationReport | None) -> pd.Series:
    """One more label from a column: its codes first, then read as the label's kind."""
    s = parsing.apply_codes(raw, spec.codes)[0] if spec.codes else raw
    out = {"binary": to_flag, "regression": to_number}.get(spec.kind, parsing.as_text)(s)
    if report is not None:
        _labels_lost(raw, raw.notna() & out.isna(), spec.name, file, report)
    return out


def generated_key(frame: pd.DataFrame, key: str | list[str]) -> pd.Series:
    """customer_id for a file without one: ``"row"`` → ``row-<file row>``; a list of columns → the first 16
    hex digits of the sha256 of their values (so the same values give the same ID in every file)."""
    if key == "row":
        return pd.Series([f"row-{i}" for i in frame.index], index=frame.index, dtype="str")
    parts = [parsing.as_text(frame[c]).fillna("") if c in frame else pd.Series("", index=frame.index)
             for c in key]
    joined = parts[0].str.cat(parts[1:], sep="\x1f") if len(parts) > 1 else parts[0]
    return joined.map(lambda v: hashlib.sha256(v.encode("utf-8")).hexdigest()[:16]).astype("str")


def _how_key(how: str) -> str:
    return {"YYYY-MM-DD": "iso", "YYYY/MM/DD": "slash", "DD.MM.YYYY": "dotted"}.get(how, how.lower())


def _derive(d: DerivedColumn, src: pd.Series) -> pd.Series:
    if d.op == "age":
        birth = src if pd.api.types.is_datetime64_any_dtype(src) else to_datetime(src)
        return parsing.age_in_years(birth, d.as_of)
    if d.op == "threshold":
        return parsing.threshold(src, float(d.threshold))
    return parsing.bins(src, d.edges, d.labels)


# ---- accounts → customers ----------------------------------------------------------------------------
def resolve_accounts(events: pd.DataFrame, links: pd.DataFrame, spec: LinkSpec, file: str,
                     report: ValidationReport) -> pd.DataFrame:
    """Events keyed by ``account_id`` → the same events with ``customer_id`` (first column), through the
    link table: holders whose role is in ``spec.roles``; unlinked events are dropped and counted (warning;
    an error when none links at all)."""
    ev_acc = parsing.as_text(events["account_id"])
    lk = pd.DataFrame({"account_id": parsing.as_text(links["account_id"]),
                       "customer_id": parsing.as_text(links["customer_id"])}, index=links.index)
    if "holder_role" in links:
        roles = parsing.as_text(links["holder_role"]).str.lower()
        canon = roles.map(lambda r: HOLDER_ROLES.get(r, r), na_action="ignore")
        wanted = {HOLDER_ROLES.get(r.lower(), r.lower()) for r in spec.roles}
        lk = lk[canon.isin(wanted).to_numpy()]
    lk = lk.dropna()
    counts = lk.groupby("account_id").size()
    several = counts[counts > 1]
    if spec.several == "first":
        lk = lk.drop_duplicates("account_id")
    rows = events.assign(account_id=ev_acc).rename_axis("_row").reset_index()
    merged = rows.merge(lk, on="account_id", how="left", sort=False).set_index("_row").rename_axis(None)
    linked = merged["customer_id"].notna()
    present = merged["account_id"].notna()
    unlinked = merged[~linked & present]
    if len(unlinked):
        first = unlinked.index[0]
        key = "nothing_linked" if not linked.any() else "unlinked_events"
        report.issues.append(issue(key, file, row=int(first), column="account_id", count=len(unlinked),
                                    value=unlinked["account_id"].iloc[0], area="mapping",
                                    severity="error" if key == "nothing_linked" else "warning"))
    used_several = several.index.intersection(pd.Index(ev_acc.dropna().unique()))
    if len(used_several):
        report.issues.append(issue(f"several_holders_{spec.several}", file, column="account_id",
                                    count=len(used_several), value=used_several[0], area="mapping",
                                    severity="warning"))
    merged = merged[linked]
    cols = ["customer_id"] + [c for c in merged.columns if c != "customer_id"]
    return merged[cols]


# ---- saved mappings ----------------------------------------------------------------------------------
class MappingStore:
    """A folder of saved mappings (``*.yaml``), found again by header signature.

    ``save`` writes ``<name>.yaml`` (name: letters, digits, ``_``/``-``/``.``, and Chinese; default the first
    table's signature); ``find(headers)`` returns the newest saved TableMapping with that header signature
    and its Mapping. ``export``/``import_`` move mapping files between installations."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"MappingStore({str(self.root)!r})"

    def path(self, name: str) -> Path:
        if not re.fullmatch(r"[\w.\-\u3400-\u9fff]{1,80}", name) or name.startswith("."):
            raise MappingError("mapping.bad_name", name=name)
        return self.root / f"{name}.yaml"

    def save(self, mapping: Mapping, name: str | None = None) -> Path:
        name = name or mapping.name or (mapping.tables[0].header_signature if mapping.tables else "mapping")
        saved = mapping.model_copy(update={"name": name, "saved_at": datetime.now().isoformat(timespec="seconds")})
        return saved.save(self.path(name))

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.yaml")) if self.root.is_dir() else []

    def load(self, name: str) -> Mapping:
        return Mapping.load(self.path(name))

    def all(self) -> list[Mapping]:
        out = []
        for n in self.names():
            try:
                out.append(self.load(n))
            except MappingError:
                continue  # a broken file is skipped, not fatal
        return sorted(out, key=lambda m: m.saved_at or "", reverse=True)

    def find(self, headers: list[str]) -> tuple[TableMapping, Mapping] | None:
        sig = parsing.header_signature(headers)
        for m in self.all():
            for tm in m.tables:
                if tm.header_signature == sig:
                    return tm, m
        return None

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def export(self, name: str) -> bytes:
        return self.path(name).read_bytes()

    def import_(self, data: bytes | str, name: str | None = None) -> Path:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        mapping = Mapping.from_text(text, source=name or "import")
        return self.save(mapping, name or mapping.name)


def store_for(workspace_path: str | Path) -> MappingStore | None:
    """The default store: ``mappings/`` beside the workspace file (None for an in-memory workspace)."""
    if str(workspace_path) == ":memory:":
        return None
    return MappingStore(Path(workspace_path).resolve().parent / "mappings")


def as_store(store: MappingStore | str | Path | None) -> MappingStore | None:
    return store if isinstance(store, MappingStore) or store is None else MappingStore(store)



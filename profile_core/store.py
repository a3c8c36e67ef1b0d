"""The embedded DuckDB workspace: named, versioned datasets of canonical tables.

Layout inside the DuckDB file:

* one schema per dataset, ``ds_<name>``, holding one table per canonical table name
  (``customers``, ``transactions``, …);
* ``_datasets``: one row per live dataset (version, load time, source, fingerprint, row counts, kind);
* ``_dataset_log``: every load ever made, so version numbers keep increasing after a drop;
* ``_dataset_meta``: optional JSON per live dataset (``meta(name)``), e.g. ``{"labels": {column: kind},
  "mapping": {...}}`` written by ``ingest.load_into_workspace``.

``replace_dataset`` runs in one transaction: on any error it rolls back and the previous dataset stays
exactly as it was. Dataset names are case-insensitive (DuckDB identifiers are) and stored lower-case.

Registries (data sets and models as managed assets, shared by the app, ``serve`` and the CLI):

* ``_settings``: workspace-wide choices with who set them and when (the default data set);
* ``_models``: one row per registered bundle — path, name, data set (and its version), held-out metrics, who
  trained it and when, sha256 of its weights, archived flag;
* ``_champions``: the one model per data set every user and the API use, with who set it and when.

Changes made for a person (``user``: a ``profile_core.auth.User``) check the role's permission and the demo
rules (:func:`check_demo_use`) and are written to the audit log given to the workspace
(``profile_core.audit.AuditLog.append``) right after they commit. A person's load never replaces another
data set silently: :meth:`Workspace.replace_dataset` with ``actor`` set refuses an existing name unless
``new_version_of`` names it.

Connections are short-lived (:meth:`Workspace.close` after each unit of work, see ``ui.cache.workspace``): DuckDB
lets one process open the file at a time, so the app, ``serve`` and the CLI take turns. Opening retries while
another process holds the file and then raises :class:`WorkspaceBusy`, naming the holder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import time
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from profile_core.i18n import MessageError
from profile_core.settings import current
from profile_core.sql import quote_ident

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_META_COLUMNS = ["name", "version", "loaded_at", "source", "fingerprint", "row_counts", "kind"]
KINDS = ("tables", "flat")
DEMO_SOURCE = "demo"  # ``source`` of the generated demo portfolio's load (the app's demo loader)
_MODEL_COLUMNS = ["path", "name", "dataset", "dataset_version", "arch", "tasks", "metrics", "trained_by",
                  "trained_at", "sha256", "registered_by", "registered_at", "archived"]
_LOCK_WAIT_S = 20.0  # how long opening waits for another process holding the file


class RegistryError(MessageError):
    """A data-set or model registry change that cannot be made (one sentence, ``registry.*`` messages)."""


class WorkspaceBusy(RegistryError):
    """Another process holds the workspace file longer than we wait."""


class DemoRefused(RegistryError):
    """A demo account tried to work on data that is not demo data (or demo data is switched off)."""


def check_name(name: str) -> str:
    """A valid dataset name (letters, digits, ``_`` and ``-``), lower-cased; ValueError otherwise.

    The pattern is what makes the quoted identifiers below safe from SQL injection."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"invalid dataset name {name!r}: use 1-64 letters, digits, '_' or '-'")
    return name.lower()


def fingerprint_tables(tables: dict[str, pd.DataFrame]) -> str:
    """sha256 over table names, column names, row counts and cell values (row order included).

    Uses pandas' fixed-key row hashing, so the same content gives the same digest in every process."""
    h = hashlib.sha256()
    for tname in sorted(tables):
        df = tables[tname]
        h.update(json.dumps([tname, [str(c) for c in df.columns], len(df)], ensure_ascii=False).encode())
        if len(df) and len(df.columns):
            h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _holder(message: str) -> str:
    """``"PID 123 (streamlit run app.py)"`` from DuckDB's lock error, as far as it can be told."""
    match = re.search(r"PID (\d+)", message)
    if not match:
        return "?"
    pid = match.group(1)
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = ""
    return f"PID {pid} ({cmd[:120]})" if cmd else f"PID {pid}"


def _username(user: Any) -> str:
    return str(getattr(user, "username", None) or user or "system")


def _role(user: Any) -> str:
    return str(getattr(user, "role", None) or "operator")


def is_demo_dataset(ws: Workspace, name: str) -> bool:
    """``profile_core.auth.dataset_is_demo`` of data set ``name`` (the one definition of demo data)."""
    from profile_core.auth import dataset_is_demo

    row = ws._require(name)
    return dataset_is_demo(row["source"], ws.meta(name))


def check_demo_use(user: Any, ws: Workspace | None = None, dataset: str | None = None, *,
                   action: str = "use") -> None:
    """Demo rules, enforced here for every surface: with demo data off (``PROFILE_DEMO=0``) a demo account may
    do nothing; a demo account may load only the generated demo portfolio and train, save or choose models
    only on demo data. ``DemoRefused`` otherwise; nothing for people who are not demo accounts."""
    if not getattr(user, "demo", False):
        return
    if not current().demo:
        raise DemoRefused("registry.demo_off", action=action)
    if ws is not None and dataset is not None and ws.has_dataset(dataset) and not is_demo_dataset(ws, dataset):
        raise DemoRefused("registry.demo_only", action=action, dataset=dataset)


def _require_permission(user: Any, action: str) -> None:
    if user is None or isinstance(user, str):  # the operator (CLI) or the app itself
        return
    from profile_core.auth import policy_for, require

    require(policy_for(user), action)


def bundle_sha256(path: str | Path) -> str:
    """The manifest's sha256 of the weights, else the sha256 of ``weights.safetensors``."""
    path = Path(path)
    try:
        sha = json.loads((path / "manifest.json").read_text(encoding="utf-8")).get("weights_sha256")
    except (OSError, ValueError):
        sha = None
    if sha:
        return str(sha)
    h = hashlib.sha256()
    with open(path / "weights.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Workspace:
    """A DuckDB file (or ``":memory:"``) holding named datasets and the registries; the connection opens on
    first use and :meth:`close` releases the file for other processes.

    ``audit``: an ``AuditLog`` (anything with its ``append(user, role, action, target, details)``) that registry
    changes are written to. ``actor`` / ``new_version_of``: set for the duration of a person's load (see
    :meth:`acting`)."""

    def __init__(self, path: str | Path | None = None, *, audit: Any = None, lock_wait_s: float = _LOCK_WAIT_S) -> None:
        self.path = str(path if path is not None else current().workspace)  # $PROFILE_WORKSPACE
        self._con: duckdb.DuckDBPyConnection | None = None
        self.audit = audit
        self.lock_wait_s = lock_wait_s
        self.actor: Any = None
        self.new_version_of: str | None = None

    # -- connection -------------------------------------------------------------------------------
    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                # files this process creates from now on are private (0600): the workspace and DuckDB's WAL, which
                # is re-created after every checkpoint (DuckDB takes no file mode); the umask only ever tightens
                os.umask(os.umask(0o077) | 0o077)
            con = self._connect()
            for private in (Path(self.path), Path(f"{self.path}.wal")) if self.path != ":memory:" else ():
                with suppress(OSError):  # an older workspace created 0644: make it private too
                    if private.stat().st_mode & 0o077:
                        private.chmod(0o600)
            con.execute(
                "CREATE TABLE IF NOT EXISTS _datasets (name VARCHAR PRIMARY KEY, version INTEGER, "
                "loaded_at TIMESTAMP, source VARCHAR, fingerprint VARCHAR, row_counts VARCHAR, kind VARCHAR)"
            )
            con.execute(
                "CREATE TABLE IF NOT EXISTS _dataset_log (name VARCHAR, version INTEGER, loaded_at TIMESTAMP, "
                "source VARCHAR, fingerprint VARCHAR, kind VARCHAR)"
            )
            con.execute("CREATE TABLE IF NOT EXISTS _dataset_meta (name VARCHAR PRIMARY KEY, meta VARCHAR)")
            con.execute("CREATE TABLE IF NOT EXISTS _settings (key VARCHAR PRIMARY KEY, value VARCHAR, "
                        "set_by VARCHAR, set_at TIMESTAMP)")
            con.execute(
                "CREATE TABLE IF NOT EXISTS _models (path VARCHAR PRIMARY KEY, name VARCHAR, dataset VARCHAR, "
                "dataset_version INTEGER, arch VARCHAR, tasks VARCHAR, metrics VARCHAR, trained_by VARCHAR, "
                "trained_at TIMESTAMP, sha256 VARCHAR, registered_by VARCHAR, registered_at TIMESTAMP, "
                "archived BOOLEAN DEFAULT false)"
            )
            con.execute("CREATE TABLE IF NOT EXISTS _champions (dataset VARCHAR PRIMARY KEY, path VARCHAR, "
                        "set_by VARCHAR, set_at TIMESTAMP)")
            con.execute("CREATE TABLE IF NOT EXISTS _sessions (token_sha256 VARCHAR PRIMARY KEY, username VARCHAR, "
                        "client VARCHAR, created_at TIMESTAMP, last_seen TIMESTAMP, revoked BOOLEAN DEFAULT false)")
            con.execute("CREATE TABLE IF NOT EXISTS _user_prefs (username VARCHAR, key VARCHAR, value VARCHAR, "
                        "set_at TIMESTAMP, PRIMARY KEY (username, key))")
            con.execute("CREATE TABLE IF NOT EXISTS _cohorts (dataset VARCHAR, name VARCHAR, definition VARCHAR, "
                        "saved_by VARCHAR, saved_at TIMESTAMP, PRIMARY KEY (dataset, name))")
            self._con = con
        return self._con

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """Open the file, retrying while another process holds it (``WorkspaceBusy`` after ``lock_wait_s``)."""
        deadline = time.monotonic() + self.lock_wait_s
        delay = 0.05
        while True:
            try:
                return duckdb.connect(self.path)
            except duckdb.IOException as e:
                if "lock" not in str(e).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise WorkspaceBusy("registry.busy", path=self.path, holder=_holder(str(e)),
                                        seconds=f"{self.lock_wait_s:.0f}") from None
                time.sleep(delay)
                delay = min(delay * 1.5, 0.5)

    def acting(self, user: Any, *, new_version_of: str | None = None) -> _Acting:
        """``with ws.acting(user, new_version_of=...)``: loads in the block are made for ``user`` (demo rules;
        an existing name is replaced only when it is ``new_version_of``)."""
        return _Acting(self, user, new_version_of)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- queries ----------------------------------------------------------------------------------
    def list_datasets(self) -> pd.DataFrame:
        """One row per dataset: name, version, loaded_at, source, fingerprint, row_counts (JSON), kind."""
        return self.con.execute(f"SELECT {', '.join(_META_COLUMNS)} FROM _datasets ORDER BY name").df()

    def has_dataset(self, name: str) -> bool:
        return self._meta(check_name(name)) is not None

    def tables(self, name: str) -> list[str]:
        """Table names of a dataset, in load order."""
        return list(json.loads(self._require(name)["row_counts"]))

    def read_table(self, name: str, table: str) -> pd.DataFrame:
        if table not in self.tables(name):
            raise KeyError(f"dataset {name!r} has no table {table!r}")
        return self.con.execute(f"SELECT * FROM {self._qualified(name, table)}").df()

    def relation_names(self, name: str) -> dict[str, str]:
        """Canonical table → qualified SQL name, e.g. ``{"customers": '"ds_main"."customers"'}``."""
        return {t: self._qualified(name, t) for t in self.tables(name)}

    def fingerprint(self, name: str) -> str:
        return str(self._require(name)["fingerprint"])

    def version(self, name: str) -> int:
        return int(self._require(name)["version"])

    def kind(self, name: str) -> str:
        return str(self._require(name)["kind"])

    def meta(self, name: str) -> dict:
        """The JSON metadata stored with the dataset's current version ({} when none)."""
        name = check_name(name)
        self._require(name)
        row = self.con.execute("SELECT meta FROM _dataset_meta WHERE name = ?", [name]).fetchone()
        return json.loads(row[0]) if row and row[0] else {}

    # -- changes ----------------------------------------------------------------------------------
    def replace_dataset(self, name: str, tables: dict[str, pd.DataFrame], *, source: str = "",
                        kind: str = "tables", meta: dict | None = None) -> int:
        """Replace dataset ``name`` with ``tables`` (and its ``meta``, JSON-able) in one transaction;
        returns the new version number."""
        name = check_name(name)
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        if source == DEMO_SOURCE and not current().demo:
            raise DemoRefused("registry.demo_off", action="load")
        if self.actor is not None:
            if getattr(self.actor, "demo", False) and source != DEMO_SOURCE:
                raise DemoRefused("registry.demo_only", action="load", dataset=name)
            check_demo_use(self.actor, action="load")
            wanted = check_name(self.new_version_of) if self.new_version_of else None
            reload_demo = source == DEMO_SOURCE and self.has_dataset(name) and is_demo_dataset(self, name)
            if self.has_dataset(name) and wanted != name and not reload_demo:
                raise RegistryError("registry.exists", dataset=name)
        if not tables:
            raise ValueError("a dataset needs at least one table")
        for t in tables:
            if not _TABLE.fullmatch(t):
                raise ValueError(f"invalid table name {t!r}")
        fp = fingerprint_tables(tables)
        counts = json.dumps({t: len(df) for t, df in tables.items()})
        meta_json = json.dumps(meta, ensure_ascii=False, default=str) if meta else None
        con = self.con
        con.begin()
        try:
            version = con.execute("SELECT coalesce(max(version), 0) + 1 FROM _dataset_log WHERE name = ?",
                                  [name]).fetchone()[0]
            schema = quote_ident(f"ds_{name}")
            con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            con.execute(f"CREATE SCHEMA {schema}")
            for t, df in tables.items():
                self._write_table(schema, t, df)
            now = datetime.now()
            con.execute("DELETE FROM _datasets WHERE name = ?", [name])
            con.execute("INSERT INTO _datasets VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [name, version, now, source, fp, counts, kind])
            con.execute("INSERT INTO _dataset_log VALUES (?, ?, ?, ?, ?, ?)", [name, version, now, source, fp, kind])
            con.execute("DELETE FROM _dataset_meta WHERE name = ?", [name])
            if meta_json is not None:
                con.execute("INSERT INTO _dataset_meta VALUES (?, ?)", [name, meta_json])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        return int(version)

    def update_meta(self, name: str, values: dict) -> dict:
        """Merge ``values`` (JSON-able) into the meta of dataset ``name``'s current version; returns the new meta.
        The next load of ``name`` replaces the meta as a whole (tags do not outlive the data they describe)."""
        name = check_name(name)
        self._require(name)
        meta = {**self.meta(name), **values}
        con = self.con
        con.begin()
        try:
            con.execute("DELETE FROM _dataset_meta WHERE name = ?", [name])
            con.execute("INSERT INTO _dataset_meta VALUES (?, ?)",
                        [name, json.dumps(meta, ensure_ascii=False, default=str)])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        return meta

    def drop_dataset(self, name: str) -> None:
        """Remove a dataset and its tables (its load history stays, so versions are never reused)."""
        name = check_name(name)
        con = self.con
        con.begin()
        try:
            con.execute(f"DROP SCHEMA IF EXISTS {quote_ident(f'ds_{name}')} CASCADE")
            con.execute("DELETE FROM _datasets WHERE name = ?", [name])
            con.execute("DELETE FROM _dataset_meta WHERE name = ?", [name])
            con.commit()
        except BaseException:
            con.rollback()
            raise

    # -- data sets as assets ------------------------------------------------------------------------
    def rename_dataset(self, old: str, new: str, *, user: Any = None) -> None:
        """Rename data set ``old`` to ``new`` (tables, meta, load history, models, champion and the default
        follow); ``RegistryError`` when ``new`` exists. Audited as ``dataset_rename``."""
        _require_permission(user, "load_data")
        old, new = check_name(old), check_name(new)
        self._require(old)
        check_demo_use(user, self, old, action="rename")
        if old == new:
            return
        if self.has_dataset(new):
            raise RegistryError("registry.exists", dataset=new)
        con = self.con
        src, dst = quote_ident(f"ds_{old}"), quote_ident(f"ds_{new}")
        con.begin()
        try:
            con.execute(f"CREATE SCHEMA {dst}")
            for t in self.tables(old):
                con.execute(f"CREATE TABLE {dst}.{quote_ident(t)} AS SELECT * FROM {src}.{quote_ident(t)}")
            con.execute(f"DROP SCHEMA {src} CASCADE")
            version = con.execute("SELECT coalesce(max(version), 0) FROM _dataset_log WHERE name = ?", [new]).fetchone()[0]
            current_version = self.version(old)
            if version >= current_version:  # a dropped data set once had this name: keep versions increasing
                con.execute("UPDATE _datasets SET version = ? WHERE name = ?", [version + 1, old])
            con.execute("INSERT INTO _dataset_log SELECT ?, version, loaded_at, source, fingerprint, kind "
                        "FROM _datasets WHERE name = ?", [new, old])
            for table, column in (("_datasets", "name"), ("_dataset_meta", "name"), ("_models", "dataset"),
                                  ("_champions", "dataset"), ("_cohorts", "dataset")):
                con.execute(f"UPDATE {table} SET {column} = ? WHERE {column} = ?", [new, old])
            con.execute("UPDATE _settings SET value = ? WHERE key = 'default_dataset' AND value = ?", [new, old])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        self._record(user, "dataset_rename", new, {"old": old, "new": new})

    def delete_dataset(self, name: str, *, user: Any = None, confirm: str | None = None) -> None:
        """Delete data set ``name`` for ``user``; ``confirm`` must repeat the name (the screen asks for it).
        Its champion and the default (when it was) go with it; its models stay registered, archived.
        Audited as ``dataset_delete``."""
        _require_permission(user, "load_data")
        name = check_name(name)
        row = self._require(name)
        check_demo_use(user, self, name, action="delete")
        if confirm is None or check_name(confirm) != name:
            raise RegistryError("registry.confirm", dataset=name)
        self.drop_dataset(name)
        con = self.con
        con.execute("DELETE FROM _champions WHERE dataset = ?", [name])
        con.execute("DELETE FROM _cohorts WHERE dataset = ?", [name])
        con.execute("UPDATE _models SET archived = true WHERE dataset = ?", [name])
        con.execute("DELETE FROM _settings WHERE key = 'default_dataset' AND value = ?", [name])
        self._record(user, "dataset_delete", name, {"version": int(row["version"]), "source": str(row["source"])})

    def default_dataset(self) -> str | None:
        """The workspace's default data set (what a new session opens): the one set by an admin or analyst,
        else the data set loaded first (a later upload never takes over other people's sessions), else None."""
        row = self.con.execute("SELECT value FROM _settings WHERE key = 'default_dataset'").fetchone()
        if row and self.has_dataset(row[0]):
            return str(row[0])
        first = self.con.execute("SELECT d.name FROM _datasets d LEFT JOIN (SELECT name, min(loaded_at) AS t "
                                 "FROM _dataset_log GROUP BY name) l USING (name) "
                                 "ORDER BY coalesce(l.t, d.loaded_at), d.name LIMIT 1").fetchone()
        return str(first[0]) if first else None

    def set_default_dataset(self, name: str, *, user: Any = None) -> None:
        """Make ``name`` the data set new sessions open (admin / analyst). Audited as ``dataset_default``."""
        _require_permission(user, "load_data")
        name = check_name(name)
        self._require(name)
        check_demo_use(user, self, name, action="default")
        self._set("default_dataset", name, user)
        self._record(user, "dataset_default", name, {})

    def setting(self, key: str) -> dict | None:
        """A workspace setting: ``{"value", "set_by", "set_at"}`` or None."""
        row = self.con.execute("SELECT value, set_by, set_at FROM _settings WHERE key = ?", [key]).fetchone()
        return dict(zip(("value", "set_by", "set_at"), row, strict=True)) if row else None

    def _set(self, key: str, value: str, user: Any) -> None:
        con = self.con
        con.begin()
        try:
            con.execute("DELETE FROM _settings WHERE key = ?", [key])
            con.execute("INSERT INTO _settings VALUES (?, ?, ?, ?)", [key, value, _username(user), datetime.now()])
            con.commit()
        except BaseException:
            con.rollback()
            raise

    # -- models as assets -----------------------------------------------------------------------------
    def register_model(self, bundle_path: str | Path, *, dataset: str, user: Any = None,
                       metrics: dict | None = None, trained_by: str | None = None,
                       trained_at: datetime | None = None, sha256: str | None = None) -> dict:
        """Record the bundle at ``bundle_path`` as trained on ``dataset``: held-out metrics (default: the
        manifest's ``metrics["test"]``), who trained it and when (default: ``user``, the manifest's creation
        time), sha256 of its weights. Registering the same path again updates the row. Audited as
        ``model_register``; returns the row (:meth:`model`)."""
        _require_permission(user, "train")
        dataset = check_name(dataset)
        self._require(dataset)
        check_demo_use(user, self, dataset, action="save")
        path = str(Path(bundle_path).resolve())
        manifest: dict = {}
        try:
            manifest = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            if sha256 is None:
                raise RegistryError("registry.no_bundle", path=path) from None
        held_out = metrics if metrics is not None else (manifest.get("metrics") or {}).get("test", {})
        when = trained_at or _parse_time(manifest.get("created_utc")) or datetime.now()
        arch = str((manifest.get("config") or {}).get("arch") or manifest.get("architecture") or "")
        tasks = [t.get("name") if isinstance(t, dict) else str(t) for t in manifest.get("tasks") or []]
        row = [path, str(manifest.get("name") or Path(path).name), dataset, self.version(dataset), arch[:40],
               json.dumps(tasks, ensure_ascii=False), json.dumps(held_out, ensure_ascii=False, default=float),
               trained_by or _username(user), when, sha256 or bundle_sha256(path), _username(user), datetime.now(),
               False]
        con = self.con
        con.begin()
        try:
            con.execute("DELETE FROM _models WHERE path = ?", [path])
            con.execute(f"INSERT INTO _models ({', '.join(_MODEL_COLUMNS)}) VALUES ({', '.join('?' * len(row))})",
                        row)
            con.commit()
        except BaseException:
            con.rollback()
            raise
        self._record(user, "model_register", Path(path).name, {"dataset": dataset, "sha256": row[9][:16]})
        return self.model(path)  # type: ignore[return-value]

    def model(self, bundle_path: str | Path) -> dict | None:
        """The registry row of a bundle (metrics and tasks decoded), or None."""
        path = str(Path(bundle_path).resolve())
        cur = self.con.execute(f"SELECT {', '.join(_MODEL_COLUMNS)} FROM _models WHERE path = ?", [path])
        row = cur.fetchone()
        return _model_row(dict(zip(_MODEL_COLUMNS, row, strict=True))) if row else None

    def models(self, dataset: str | None = None, *, archived: bool = False) -> pd.DataFrame:
        """Registered models (newest first), of ``dataset`` when given, archived ones only when asked; with a
        ``champion`` column."""
        where, args = ["(archived = false OR ?)"], [archived]
        if dataset is not None:
            where.append("m.dataset = ?")
            args.append(check_name(dataset))
        frame = self.con.execute(
            f"SELECT {', '.join('m.' + c for c in _MODEL_COLUMNS)}, c.path IS NOT NULL AS champion FROM _models m "
            "LEFT JOIN _champions c ON c.dataset = m.dataset AND c.path = m.path "
            f"WHERE {' AND '.join(where)} ORDER BY m.registered_at DESC", args).df()
        for column in ("metrics", "tasks"):
            frame[column] = frame[column].map(lambda v: json.loads(v) if isinstance(v, str) and v else {})
        return frame

    def archive_model(self, bundle_path: str | Path, *, user: Any = None, archived: bool = True) -> None:
        """Archive (hide from choices) or restore a registered model; a champion cannot be archived."""
        _require_permission(user, "activate_bundle")
        row = self.model(bundle_path)
        if row is None:
            raise RegistryError("registry.unknown_model", path=str(bundle_path))
        if archived and self._champion_path(row["dataset"]) == row["path"]:
            raise RegistryError("registry.champion_archive", name=row["name"])
        self.con.execute("UPDATE _models SET archived = ? WHERE path = ?", [bool(archived), row["path"]])
        self._record(user, "model_archive", Path(row["path"]).name, {"dataset": row["dataset"], "archived": bool(archived)})

    def champion(self, dataset: str) -> dict | None:
        """The champion of ``dataset`` — the model every user and the API use — as its registry row plus
        ``set_by`` / ``set_at``; None when none was chosen (or its bundle folder is gone)."""
        name = check_name(dataset)
        row = self.con.execute("SELECT path, set_by, set_at FROM _champions WHERE dataset = ?", [name]).fetchone()
        if row is None or not (Path(row[0]) / "manifest.json").is_file():
            return None
        model = self.model(row[0]) or {"path": row[0], "dataset": name}
        return {**model, "bundle_path": row[0], "set_by": row[1], "set_at": row[2]}

    def set_champion(self, dataset: str, bundle_path: str | Path, user: Any = None) -> dict:
        """Make the bundle at ``bundle_path`` the champion of ``dataset`` (registering it on the way when it
        is not yet), persisted with who set it and when; audited as ``model_champion``. Returns
        :meth:`champion`."""
        _require_permission(user, "activate_bundle")
        name = check_name(dataset)
        self._require(name)
        check_demo_use(user, self, name, action="champion")
        path = str(Path(bundle_path).resolve())
        if not (Path(path) / "manifest.json").is_file():
            raise RegistryError("registry.no_bundle", path=path)
        row = self.model(path)
        if row is None:
            row = self.register_model(path, dataset=name, user=user)
        elif row["archived"]:
            raise RegistryError("registry.archived", name=row["name"])
        previous = self._champion_path(name)
        con = self.con
        con.begin()
        try:
            con.execute("DELETE FROM _champions WHERE dataset = ?", [name])
            con.execute("INSERT INTO _champions VALUES (?, ?, ?, ?)", [name, path, _username(user), datetime.now()])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        self._record(user, "model_champion", Path(path).name, {"dataset": name, "sha256": str(row["sha256"])[:16],
                                                           "previous": Path(previous).name if previous else ""})
        return self.champion(name)  # type: ignore[return-value]

    def _champion_path(self, dataset: str) -> str | None:
        row = self.con.execute("SELECT path FROM _champions WHERE dataset = ?", [dataset]).fetchone()
        return row[0] if row else None

    # -- cohorts saved with a data set (profile_core.cohorts) -------------------------------------------
    def save_cohort(self, dataset: str, name: str, definition: str, *, user: Any = None) -> None:
        """Save (or replace) cohort ``name`` of data set ``dataset``: ``definition`` is its JSON
        (``cohorts.Cohort.to_json``). Needs ``view_customers``; audited as ``cohort_save``."""
        _require_permission(user, "view_customers")
        dataset = check_name(dataset)
        self._require(dataset)
        name = _cohort_name(name)
        json.loads(definition)  # JSON or refused
        con = self.con
        con.begin()
        try:
            con.execute("DELETE FROM _cohorts WHERE dataset = ? AND name = ?", [dataset, name])
            con.execute("INSERT INTO _cohorts VALUES (?, ?, ?, ?, ?)",
                        [dataset, name, definition, _username(user), datetime.now()])
            con.commit()
        except BaseException:
            con.rollback()
            raise
        self._record(user, "cohort_save", dataset, {"cohort": name})

    def cohorts(self, dataset: str) -> list[dict]:
        """The cohorts saved with ``dataset``, by name: ``{"name", "definition", "saved_by", "saved_at"}``."""
        rows = self.con.execute("SELECT name, definition, saved_by, saved_at FROM _cohorts WHERE dataset = ? "
                                "ORDER BY name", [check_name(dataset)]).fetchall()
        return [dict(zip(("name", "definition", "saved_by", "saved_at"), r, strict=True)) for r in rows]

    def delete_cohort(self, dataset: str, name: str, *, user: Any = None) -> bool:
        """Delete cohort ``name`` of ``dataset`` (who saved it, an analyst or an admin); False when there was
        none. Audited as ``cohort_delete``."""
        _require_permission(user, "view_customers")
        dataset, name = check_name(dataset), _cohort_name(name)
        row = self.con.execute("SELECT saved_by FROM _cohorts WHERE dataset = ? AND name = ?",
                               [dataset, name]).fetchone()
        if row is None:
            return False
        if user is not None and _role(user) not in ("analyst", "admin") and row[0] != _username(user):
            raise RegistryError("registry.cohort_not_yours", cohort=name, owner=str(row[0]))
        self.con.execute("DELETE FROM _cohorts WHERE dataset = ? AND name = ?", [dataset, name])
        self._record(user, "cohort_delete", dataset, {"cohort": name})
        return True

    # -- sign-in sessions and per-user preferences -------------------------------------------------
    def create_session(self, username: str, client: str = "") -> str:
        """A new sign-in session for ``username`` from ``client`` (e.g. a hash of the browser's user agent);
        returns the token (shown to the browser once; only its sha256 is stored)."""
        token = secrets.token_urlsafe(32)
        now = datetime.now()
        self.con.execute("INSERT INTO _sessions VALUES (?, ?, ?, ?, ?, false)",
                         [_sha(token), str(username), str(client), now, now])
        return token

    def resume_session(self, token: str | None, client: str = "", *, idle_s: float) -> str | None:
        """The username of a live session: the token is known, not revoked, used from the same ``client`` and
        seen within ``idle_s`` seconds; marks it seen now. None otherwise (an idle session is revoked)."""
        if not token or not isinstance(token, str) or len(token) > 200:
            return None
        key = _sha(token)
        row = self.con.execute("SELECT username, client, last_seen, revoked FROM _sessions WHERE token_sha256 = ?",
                               [key]).fetchone()
        if row is None or row[3] or row[1] != str(client):
            return None
        now = datetime.now()
        if (now - row[2]).total_seconds() > idle_s:
            self.con.execute("UPDATE _sessions SET revoked = true WHERE token_sha256 = ?", [key])
            return None
        self.con.execute("UPDATE _sessions SET last_seen = ? WHERE token_sha256 = ?", [now, key])
        return str(row[0])

    def touch_session(self, token: str | None) -> None:
        if token:
            self.con.execute("UPDATE _sessions SET last_seen = ? WHERE token_sha256 = ? AND NOT revoked",
                             [datetime.now(), _sha(token)])

    def revoke_session(self, token: str | None = None, *, username: str | None = None) -> int:
        """Revoke one session (``token``) or every session of ``username``; returns how many."""
        if token:
            where, arg = "token_sha256 = ?", _sha(token)
        elif username:
            where, arg = "username = ?", str(username)
        else:
            return 0
        n = self.con.execute(f"SELECT count(*) FROM _sessions WHERE {where} AND NOT revoked", [arg]).fetchone()[0]
        self.con.execute(f"UPDATE _sessions SET revoked = true WHERE {where}", [arg])
        return int(n)

    def user_pref(self, username: str, key: str) -> str | None:
        row = self.con.execute("SELECT value FROM _user_prefs WHERE username = ? AND key = ?",
                               [str(username), key]).fetchone()
        return str(row[0]) if row else None

    def set_user_pref(self, username: str, key: str, value: str) -> None:
        con = self.con
        con.begin()
        try:
            con.execute("DELETE FROM _user_prefs WHERE username = ? AND key = ?", [str(username), key])
            con.execute("INSERT INTO _user_prefs VALUES (?, ?, ?, ?)", [str(username), key, str(value), datetime.now()])
            con.commit()
        except BaseException:
            con.rollback()
            raise

    def _record(self, user: Any, action: str, target: str, details: dict) -> None:
        if self.audit is not None:
            self.audit.append(_username(user), _role(user), action, target, details)

    # -- internals --------------------------------------------------------------------------------
    def _write_table(self, schema: str, table: str, df: pd.DataFrame) -> None:
        view = "_incoming_frame"
        self.con.register(view, df)
        try:
            self.con.execute(f"CREATE TABLE {schema}.{quote_ident(table)} AS SELECT * FROM {view}")
        finally:
            self.con.unregister(view)

    def _meta(self, name: str) -> dict | None:
        cur = self.con.execute(f"SELECT {', '.join(_META_COLUMNS)} FROM _datasets WHERE name = ?", [name])
        row = cur.fetchone()
        return dict(zip(_META_COLUMNS, row, strict=True)) if row else None

    def _require(self, name: str) -> dict:
        meta = self._meta(check_name(name))
        if meta is None:
            raise KeyError(f"no dataset named {name!r}")
        return meta

    def _qualified(self, name: str, table: str) -> str:
        if not _TABLE.fullmatch(table):
            raise ValueError(f"invalid table name {table!r}")
        return f"{quote_ident('ds_' + check_name(name))}.{quote_ident(table)}"


class _Acting:
    def __init__(self, ws: Workspace, user: Any, new_version_of: str | None) -> None:
        self.ws, self.user, self.new_version_of = ws, user, new_version_of

    def __enter__(self) -> Workspace:
        self.saved = (self.ws.actor, self.ws.new_version_of)
        self.ws.actor, self.ws.new_version_of = self.user, self.new_version_of
        return self.ws

    def __exit__(self, *exc: object) -> None:
        self.ws.actor, self.ws.new_version_of = self.saved


def _cohort_name(name: str) -> str:
    text = str(name or "").strip()
    if not 1 <= len(text) <= 64 or any(ord(c) < 32 for c in text):
        raise ValueError(f"invalid cohort name {name!r}")
    return text


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parse_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)).replace(tzinfo=None) if value else None
    except ValueError:
        return None


def _model_row(row: dict) -> dict:
    for column in ("metrics", "tasks"):
        row[column] = json.loads(row[column]) if row[column] else ({} if column == "metrics" else [])
    row["archived"] = bool(row["archived"])
    return row

"""The mapping step of the data page: review and correct the proposed column mapping of uploaded files.

``render_mapping_step(files, lang=..., key_prefix=...)`` draws the proposal of
:func:`profile_core.ingest.propose_files` (saved mappings re-applied by header) and returns the confirmed
:class:`~profile_core.ingest.Mapping` on the run its confirm button is pressed, else None. Only widgets
here: every decision is a call into ``profile_core.ingest``. The working mapping lives in session state
under ``{key_prefix}-state-mapping`` and is proposed again when the files change.

Widget keys (for tests): ``{p}-{i}-table``, ``{p}-{i}-column``, ``{p}-{i}-{j}-target`` / ``-kind`` /
``-date`` / ``-decimal`` / ``-codes`` / ``-protected``, ``{p}-{i}-labels``, ``{p}-{i}-{j}-label-kind`` / ``-label-name`` / ``-label-role``,
``{p}-{i}-join-key`` / ``-via`` / ``-on`` / ``-prefix`` (attached tables), ``{p}-link-roles``,
``{p}-save-name``, ``{p}-confirm`` — ``i`` is the file (table) index, ``j`` the column index.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from profile_core.i18n import t
from profile_core.ingest import editing as ed
from profile_core.ingest import mapping as mp
from profile_core.ingest.parsers import DATE_FORMATS, codes_text, parse_codes_text

_ROLES = ("owner", "disponent")


def render_mapping_step(files: list, *, lang: str = "zh", key_prefix: str = "mapping",
                        store: mp.MappingStore | str | Path | None = None) -> mp.Mapping | None:
    """Draw the mapping step for ``files`` (``(name, bytes | path)`` pairs or Streamlit UploadedFiles);
    returns the confirmed Mapping on the run the confirm button is pressed (saved to ``store`` first when
    a name is given), else None."""
    p = key_prefix
    pairs = [(f.name, f.getvalue()) if hasattr(f, "getvalue") else (f[0], f[1]) for f in files or []]
    store = mp.MappingStore(store) if isinstance(store, str | Path) else store
    upload = ed.upload_signature(pairs)
    if st.session_state.get(f"{p}-state-files") != upload:
        for key in [k for k in st.session_state if str(k).startswith(f"{p}-")]:
            del st.session_state[key]
        proposal, unreadable = mp.propose_files(pairs, store=store)
        st.session_state[f"{p}-state-files"] = upload
        st.session_state[f"{p}-state-mapping"] = proposal
        st.session_state[f"{p}-state-unreadable"] = unreadable
    mapping: mp.Mapping = st.session_state[f"{p}-state-mapping"]

    st.subheader(t("mapping.ui.header", lang))
    st.caption(t("mapping.ui.help", lang))
    unreadable = st.session_state[f"{p}-state-unreadable"]
    if unreadable:
        st.error(t("mapping.ui.unreadable", lang) + " " + " ".join(i.message(lang) for i in unreadable))
    imported = st.file_uploader(t("mapping.ui.import", lang), type=["yaml", "yml", "json"], key=f"{p}-import")
    if imported is not None and st.session_state.get(f"{p}-state-imported") != imported.file_id:
        try:
            saved = mp.Mapping.from_text(imported.getvalue().decode("utf-8-sig"), source=imported.name)
        except mp.MappingError as e:
            st.error(e.message(lang))
        else:
            _replace(p, ed.merge_saved(mapping, saved))
            st.session_state[f"{p}-state-imported"] = imported.file_id
            st.rerun()

    for i, tm in enumerate(mapping.tables):
        with st.container(border=True):
            _table_block(p, i, tm, lang)
    if any(tm.table == mp.LINK_TABLE for tm in mapping.tables):
        _init(f"{p}-link-roles", list(mapping.link.roles))
        st.multiselect(t("mapping.ui.link_roles", lang), _ROLES, key=f"{p}-link-roles", on_change=_on_link_roles,
                       args=(p,))
    code_file = st.file_uploader(t("mapping.ui.code_file", lang), type=["csv", "xlsx"], key=f"{p}-code-file")
    if code_file is not None and st.session_state.get(f"{p}-state-codes") != code_file.file_id:
        _replace(p, ed.apply_code_tables(_mapping(p), ed.read_code_tables(code_file.name, code_file.getvalue())))
        st.session_state[f"{p}-state-codes"] = code_file.file_id
        st.rerun()

    mapping = _mapping(p)
    problems = ed.problem_texts(mapping, lang)
    for severity, text in problems:
        (st.error if severity == "error" else st.warning)(text)
    _init(f"{p}-save-name", mapping.name or "")
    name = st.text_input(t("mapping.ui.save_name", lang), key=f"{p}-save-name")
    st.download_button(t("mapping.ui.download", lang), mapping.to_yaml(), file_name=f"{name or 'mapping'}.yaml",
                       mime="application/x-yaml", key=f"{p}-download")
    if not st.button(t("mapping.ui.confirm", lang), type="primary", key=f"{p}-confirm"):
        return None
    if any(severity == "error" for severity, _ in problems):
        st.error(t("mapping.ui.fix_first", lang))
        return None
    if name:
        try:
            path = store.save(mapping, name) if store is not None else None
        except mp.MappingError as e:
            st.error(e.message(lang))
            return None
        mapping = mapping.model_copy(update={"name": name})
        if path is not None:
            st.success(t("mapping.ui.saved_to", lang, path=str(path)))
    return mapping


def _table_block(p: str, i: int, tm: mp.TableMapping, lang: str) -> None:
    st.markdown(f"**{tm.file}**")
    if tm.saved_as is not None:
        st.info(t("mapping.ui.saved", lang, name=tm.saved_as))
    note = ed.format_note(tm, lang)
    if note:
        st.caption(note)
    for text in ed.derived_notes(tm, lang):
        st.caption(text)
    _init(f"{p}-{i}-table", tm.table)
    st.selectbox(t("mapping.ui.table", lang), mp.TABLE_NAMES, key=f"{p}-{i}-table",
                 format_func=lambda v: t(f"mapping.table.{v}", lang), on_change=_on_table, args=(p, i))
    st.dataframe(ed.proposal_frame(tm, lang), hide_index=True)
    if tm.table == mp.ATTACH:
        _join_block(p, i, tm, lang)
    sources = list(dict.fromkeys(c.source for c in tm.columns))  # a column listed twice is edited once
    if not sources:
        return
    if st.session_state.get(f"{p}-{i}-column") not in sources:  # the table was re-proposed
        st.session_state.pop(f"{p}-{i}-column", None)
    _init(f"{p}-{i}-column", sources[0])
    source = st.selectbox(t("mapping.ui.column", lang), sources, key=f"{p}-{i}-column")
    j = sources.index(source)
    cm = tm.column(source)
    left, right = st.columns(2)
    with left:
        _init(f"{p}-{i}-{j}-target", ed.current_option(cm, tm.table))
        st.selectbox(t("mapping.ui.target", lang), ed.target_options(tm.table), key=f"{p}-{i}-{j}-target",
                     format_func=lambda v: ed.option_label(v, tm.table, lang), on_change=_on_target,
                     args=(p, i, j, source))
        if cm.role == "label":
            _init(f"{p}-{i}-{j}-kind", cm.kind or "binary")
            st.selectbox(t("mapping.ui.kind", lang), mp.LABEL_KINDS, key=f"{p}-{i}-{j}-kind",
                         format_func=lambda v: t(f"mapping.kind.{v}", lang), on_change=_on_option,
                         args=(p, i, j, source, "kind"))
    with right:
        _init(f"{p}-{i}-{j}-date", cm.date_format or "")
        st.selectbox(t("mapping.ui.date_format", lang), ["", *DATE_FORMATS], key=f"{p}-{i}-{j}-date",
                     format_func=lambda v: t("mapping.ui.date_auto", lang) if not v
                     else DATE_FORMATS[v][0 if lang == "zh" else 1],
                     on_change=_on_option, args=(p, i, j, source, "date_format"))
        _init(f"{p}-{i}-{j}-decimal", cm.decimal_comma)
        st.checkbox(t("mapping.ui.decimal_comma", lang), key=f"{p}-{i}-{j}-decimal", on_change=_on_option,
                    args=(p, i, j, source, "decimal_comma"))
        _init(f"{p}-{i}-{j}-codes", codes_text(cm.codes))
        st.text_input(t("mapping.ui.codes", lang), key=f"{p}-{i}-{j}-codes", on_change=_on_option,
                      args=(p, i, j, source, "codes"))
        _init(f"{p}-{i}-{j}-protected", cm.protected)
        st.checkbox(t("mapping.ui.protected", lang), key=f"{p}-{i}-{j}-protected", on_change=_on_option,
                    args=(p, i, j, source, "protected"))
    labels = [c.source for c in tm.columns if c.role == "label"]
    _init(f"{p}-{i}-labels", labels)
    chosen = st.multiselect(t("mapping.ui.labels", lang), sources, key=f"{p}-{i}-labels", on_change=_on_labels,
                            args=(p, i))
    for source in chosen:
        j = sources.index(source)
        _init(f"{p}-{i}-{j}-label-kind", tm.column(source).kind or "binary")
        kind_col, name_col = st.columns(2)
        kind_col.selectbox(t("mapping.ui.label_kind", lang, column=source), mp.LABEL_KINDS,
                           key=f"{p}-{i}-{j}-label-kind", format_func=lambda v: t(f"mapping.kind.{v}", lang),
                           on_change=_on_labels, args=(p, i))
        _init(f"{p}-{i}-{j}-label-name", tm.column(source).output or source)
        name_col.text_input(t("mapping.ui.rename", lang, column=source), key=f"{p}-{i}-{j}-label-name",
                            on_change=_on_rename, args=(p, i, j, source))
        _init(f"{p}-{i}-{j}-label-role", tm.column(source).label_role or "")
        kind_col.selectbox(t("mapping.ui.label_role", lang, column=source), ["", *mp.LABEL_ROLES],
                           key=f"{p}-{i}-{j}-label-role", format_func=lambda v: t(f"mapping.ui.role_{v or 'auto'}", lang),
                           on_change=_on_label_role, args=(p, i, j, source))


def _join_block(p: str, i: int, tm: mp.TableMapping, lang: str) -> None:
    """How an attached table reaches customers: its key column, and the customers column it matches or the
    account link table."""
    join = tm.join
    outputs = [c.output for c in tm.columns if c.output]
    _init(f"{p}-{i}-join-key", join.key if join is not None else (outputs[0] if outputs else ""))
    _init(f"{p}-{i}-join-via", (join.via or "") if join is not None else "")
    _init(f"{p}-{i}-join-on", (join.on or "") if join is not None else "")
    _init(f"{p}-{i}-join-prefix", join.prefix if join is not None else "")
    a, b, c, d = st.columns(4)
    a.selectbox(t("mapping.ui.join_key", lang), outputs, key=f"{p}-{i}-join-key", on_change=_on_join, args=(p, i))
    b.selectbox(t("mapping.ui.join_via", lang), ["", "account", "link"], key=f"{p}-{i}-join-via", on_change=_on_join,
                args=(p, i), format_func=lambda v: t(f"mapping.ui.join_via_{v or 'lookup'}", lang))
    c.text_input(t("mapping.ui.join_on", lang), key=f"{p}-{i}-join-on", on_change=_on_join, args=(p, i))
    d.text_input(t("mapping.ui.join_prefix", lang), key=f"{p}-{i}-join-prefix", on_change=_on_join, args=(p, i))


# ---- state plumbing: callbacks call profile_core.ingest and drop the widget values they made stale ----
def _init(key: str, value: object) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def _mapping(p: str) -> mp.Mapping:
    return st.session_state[f"{p}-state-mapping"]


def _replace(p: str, mapping: mp.Mapping, *, keep: tuple[str, ...] = ()) -> None:
    """Store ``mapping`` and forget the widget values of every file (except ``keep``) so they show it."""
    st.session_state[f"{p}-state-mapping"] = mapping
    for key in [k for k in st.session_state if str(k).startswith(f"{p}-") and "-state-" not in str(k)]:
        if key not in keep and not str(key).endswith(("-column", "-import", "-code-file", "-save-name",
                                                      "-download", "-confirm")):
            del st.session_state[key]


def _on_table(p: str, i: int) -> None:
    _replace(p, ed.set_table(_mapping(p), i, st.session_state[f"{p}-{i}-table"]))


def _on_target(p: str, i: int, j: int, source: str) -> None:
    _replace(p, ed.choose_target(_mapping(p), i, source, st.session_state[f"{p}-{i}-{j}-target"]))


def _on_option(p: str, i: int, j: int, source: str, option: str) -> None:
    suffix = {"kind": "kind", "date_format": "date", "decimal_comma": "decimal", "codes": "codes",
              "protected": "protected"}[option]
    value = st.session_state[f"{p}-{i}-{j}-{suffix}"]
    if option == "codes":
        value = parse_codes_text(value)
    elif option == "date_format":
        value = value or None
    _replace(p, ed.update_column(_mapping(p), i, source, **{option: value}), keep=(f"{p}-{i}-{j}-{suffix}",))


def _on_labels(p: str, i: int) -> None:
    mapping = _mapping(p)
    sources = [c.source for c in mapping.tables[i].columns]
    chosen = st.session_state[f"{p}-{i}-labels"]
    kinds = {s: st.session_state.get(f"{p}-{i}-{sources.index(s)}-label-kind")
             or mapping.tables[i].column(s).kind or "binary" for s in chosen}
    _replace(p, ed.set_labels(mapping, i, kinds))


def _on_rename(p: str, i: int, j: int, source: str) -> None:
    """A label's name as the user writes it (dots, spaces, 中文 allowed); empty keeps the column's name."""
    name = str(st.session_state[f"{p}-{i}-{j}-label-name"]).strip() or source
    _replace(p, ed.update_column(_mapping(p), i, source, target=name), keep=(f"{p}-{i}-{j}-label-name",))


def _on_label_role(p: str, i: int, j: int, source: str) -> None:
    role = st.session_state[f"{p}-{i}-{j}-label-role"] or None
    _replace(p, ed.update_column(_mapping(p), i, source, label_role=role), keep=(f"{p}-{i}-{j}-label-role",))


def _on_join(p: str, i: int) -> None:
    keys = ("key", "via", "on", "prefix")
    values = {k: st.session_state.get(f"{p}-{i}-join-{k}") or "" for k in keys}
    _replace(p, ed.set_join(_mapping(p), i, **values), keep=tuple(f"{p}-{i}-join-{k}" for k in keys))


def _on_link_roles(p: str) -> None:
    mapping = _mapping(p)
    link = mapping.link.model_copy(update={"roles": list(st.session_state[f"{p}-link-roles"])})
    _replace(p, mapping.model_copy(update={"link": link}), keep=(f"{p}-link-roles",))

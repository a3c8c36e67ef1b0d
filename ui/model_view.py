"""Sections of the model page: training form, live progress (a polling fragment), results, bundles."""

from __future__ import annotations

import logging
from datetime import datetime

import pandas as pd
import streamlit as st

from profile_core import charts, views
from profile_core.pipeline import band_orders
from ui import cache, keys, state, training, widgets
from ui.jobs import Job
from ui.loading import list_bundles
from ui.state import tr

log = logging.getLogger(__name__)
POLL_SECONDS = 1.0


def error_text(exc: BaseException) -> str:
    """A person-facing sentence for ``exc``: the catalogue message of core errors, else a generic one."""
    message = getattr(exc, "message", None)
    if callable(message):
        try:
            return str(message(state.lang()))
        except Exception:  # noqa: BLE001
            pass
    return tr("common.unexpected_error", detail=f"{type(exc).__name__}: {exc}"[:300])


def device_label() -> str:
    from profile_core.train import resolve_device

    device = resolve_device("auto")
    if device.type == "cuda":
        import torch

        return tr("model.device_gpu", name=torch.cuda.get_device_name(device))
    return tr("model.device_cpu") if device.type == "cpu" else str(device)


def features_or_error() -> pd.DataFrame | None:
    """The active feature table, or None after saying why it cannot be built (one sentence)."""
    try:
        return cache.active_features()
    except Exception as exc:  # noqa: BLE001 — e.g. features.FeatureError on data without dates
        st.error(error_text(exc))
        return None


# ------------------------------------------------------------------ training form


def training_form(frame: pd.DataFrame, fingerprint: str | None, running: bool) -> None:
    declared = cache.dataset_labels(state.active_dataset())
    options = training.label_options(frame, declared)
    chosen = st.multiselect(tr("model.tasks"), options, default=training.default_labels(frame, declared),
                            key=keys.TASKS,
                            help=tr("model.tasks_help"),
                            format_func=_label_display(state.lang()))
    c1, c2 = st.columns(2)
    arch = c1.selectbox(tr("model.arch"), training.ARCHS, key=keys.ARCH,
                        format_func=state.labeller("model.archs."))
    weighting = c2.selectbox(tr("model.weighting"), training.WEIGHTINGS, index=1, key=keys.WEIGHTING,
                             format_func=state.labeller("model.weightings."))
    kinds: dict[str, str] = {}
    weights: dict[str, float] = {}
    if chosen:
        st.markdown(f"**{tr('model.task_settings')}**")
    for label in chosen:
        k1, k2 = st.columns(2)
        default = training.default_kind(frame, label, declared)
        kinds[label] = k1.selectbox(tr("model.kind", label=label), training.KINDS,
                                    index=training.KINDS.index(default), key=keys.TASK_KIND.format(label=label),
                                    format_func=state.labeller("model.kinds."))
        if weighting == "fixed":
            weights[label] = k2.slider(tr("model.lambda", label=label), 0.0, 5.0, 1.0, 0.1,
                                       key=keys.TASK_WEIGHT.format(label=label))
    e1, e2, e3, e4 = st.columns(4)
    epochs = e1.number_input(tr("model.epochs"), 1, 500, 30, key=keys.EPOCHS)
    batch = e2.number_input(tr("model.batch"), 16, 8192, 256, step=16, key=keys.BATCH)
    lr = e3.number_input(tr("model.lr"), 1e-5, 1.0, 2e-3, step=5e-4, format="%.4f", key=keys.LR)
    seed = e4.number_input(tr("model.seed"), 0, 2**31 - 1, 42, key=keys.SEED)
    h1, h2 = st.columns(2)
    hybrid = h1.checkbox(tr("model.hybrid"), value=True, key=keys.HYBRID, help=tr("model.hybrid_help"))
    tune = h2.number_input(tr("model.tune"), 0, 3600, 0, step=30, key=keys.TUNE, help=tr("model.tune_help"))
    baselines = st.checkbox(tr("model.baselines"), value=False, key=keys.BASELINES, help=tr("model.baselines_help"))
    st.caption(f"{tr('model.device')}: {device_label()}")
    if st.button(tr("model.train"), type="primary", key=keys.TRAIN_BUTTON, disabled=running or not chosen):
        meta = cache.dataset_meta(state.active_dataset())
        _start(training.training_frame(frame, chosen, declared, meta), fingerprint, kinds, weights,
               roles=meta.get("label_roles") or {}, protected=meta.get("protected") or [],
               orders=band_orders(meta.get("mapping"), declared), arch=arch,
               weighting=weighting, epochs=int(epochs),
               batch=int(batch), lr=float(lr), seed=int(seed), baselines=baselines,
               hybrid="blend" if hybrid else "none", tune=float(tune))


def _label_display(lang: str):
    from profile_core.features import feature_info

    def fmt(column: str) -> str:
        info = feature_info(column)
        name = info.zh if lang == "zh" else info.en
        return column if name == column else f"{column} · {name}"

    return fmt


def _start(frame, fingerprint, kinds, weights, *, roles, protected, orders, arch, weighting, epochs, batch, lr,
           seed, baselines, hybrid="blend", tune=0.0) -> None:
    from pydantic import ValidationError

    from profile_core.train import TrainConfig

    try:
        tasks = training.build_tasks(frame, kinds, roles, orders)
        names = {t.label: t.name for t in tasks}
        config = TrainConfig(arch=arch, weighting=weighting, max_epochs=epochs, batch_size=batch, lr=lr, seed=seed,
                             device="auto", task_weights={names[k]: v for k, v in weights.items()}, hybrid=hybrid,
                             protected=tuple(dict.fromkeys([*TrainConfig().protected, *protected])))
    except ValidationError as exc:
        st.error(tr("model.bad_config", detail=exc.errors()[0].get("msg", str(exc))))
        return
    except ValueError as exc:
        st.error(error_text(exc))
        return
    training.start_job(frame.copy(), tasks, config, baselines=baselines, fingerprint=fingerprint, tune=tune)
    st.rerun()  # show the live panel (and fold the settings) right away


# ------------------------------------------------------------------ live progress


def live_panel(job: Job) -> None:
    """Progress and curves of ``job``; polls every second while it runs (a rerun never restarts it)."""
    st.fragment(run_every=POLL_SECONDS if job.running else None)(_live)(job.id)


def _live(job_id: int) -> None:
    job = training.current_job()
    if job is None or job.id != job_id:
        return
    reports = job.reports()
    tasks = job.meta["tasks"]
    config = job.meta["config"]
    done = len(reports)
    if job.running:
        phase = tr(f"model.phase.{job.phase or 'mtl'}", budget=f"{job.meta.get('tune', 0):.0f}")
        st.progress(min(done / max(config.max_epochs, 1), 1.0),
                    text=tr("model.progress", phase=phase, epoch=done, total=config.max_epochs,
                            seconds=f"{job.elapsed:.0f}"))
        if st.button(tr("model.cancel"), key=keys.CANCEL_BUTTON, disabled=job.cancel_event.is_set()):
            job.cancel()
            st.toast(tr("model.cancelling"))
    elif not st.session_state.get(f"job-seen-{job.id}"):
        st.session_state[f"job-seen-{job.id}"] = True
        st.rerun(scope="app")  # stop polling; the full page shows the results
    if reports:
        last = reports[-1]
        st.caption(tr("model.last_epoch", epoch=last.epoch, train=f"{last.train_loss:.4f}",
                      val=f"{last.val_loss:.4f}", speed=f"{last.samples_per_second:,.0f}"))
    history = training.history_long(reports, tasks)
    lang = state.lang()
    left, right = st.columns(2)
    with left:
        widgets.chart(charts.plot_training_curves(history, value="loss", title=tr("model.curve_loss"),
                                                  y_title=tr("model.loss"), lang=lang), key="model-curve-loss")
    with right:
        metric_names = ", ".join(dict.fromkeys(history["metric_name"])) if len(history) else ""
        widgets.chart(charts.plot_training_curves(history[history["split"] == "val"], value="metric", facet=True,
                                                  title=tr("model.curve_metric", metrics=metric_names),
                                                  y_title=tr("model.metric"), lang=lang),
                      key="model-curve-metric")
    with st.expander(tr("model.curve_weights")):
        widgets.chart(charts.plot_training_curves(history[history["split"] == "train"], value="weight",
                                                  y_title=tr("model.weight"), lang=lang), key="model-curve-weight")


# ------------------------------------------------------------------ results


def results(job: Job) -> None:
    status = job.status
    if status == "failed":
        st.error(tr("model.failed", detail=error_text(job.error) if job.error else ""))
        with st.expander(tr("model.trace")):
            st.code(job.error_trace)
        return
    outcome = job.result
    if outcome is None:
        return
    result = outcome.result
    lang = state.lang()
    text = tr("model.done" if status == "done" else "model.cancelled", epochs=len(result.history),
              best=result.best_epoch, seconds=f"{result.train_seconds:.1f}", device=result.device)
    (st.success if status == "done" else st.warning)(text)
    split = "test" if result.metrics.get("test") else "val"
    st.markdown(f"**{tr('model.metrics_' + split)}**")
    st.dataframe(views.metrics_table({split: result.metrics[split]}, result.tasks, lang), hide_index=True,
                 key="model-result-metrics")
    if result.config.tuned:
        st.caption(tr("model.tuned", trials=result.config.tuned.get("trials", 0),
                      score=f"{result.config.tuned.get('score', float('nan')):.4f}"))
    if result.hybrid:
        st.markdown(f"**{tr('model.hybrid_weights')}**")
        st.dataframe(views.hybrid_table(result.hybrid, result.tasks, lang), hide_index=True, key="model-hybrid")
    if outcome.comparison is not None:
        st.markdown(f"**{tr('model.comparison')}**")
        st.dataframe(training.compact_metrics(outcome.comparison), hide_index=True, key="model-comparison-table")
        widgets.chart(charts.plot_comparison(training.comparison_long(outcome.comparison, result.tasks),
                                             title=tr("model.comparison_chart"), lang=lang),
                      key="model-comparison-chart")
    if outcome.baseline_error:
        st.warning(tr("model.baselines_failed", detail=outcome.baseline_error))
    _save_form(job, outcome)


def _save_form(job: Job, outcome: training.TrainingOutcome) -> None:
    config = job.meta["config"]
    default = f"{config.arch}-{config.weighting}-{datetime.now():%Y%m%d-%H%M}"
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    name = c1.text_input(tr("model.save_name"), value=default, key=keys.SAVE_NAME, help=tr("model.save_help"))
    if c2.button(tr("model.save"), key=keys.SAVE_BUTTON, width="stretch"):
        if not training.valid_bundle_name(name):
            st.error(tr("model.bad_name", name=name))
            return
        try:
            path = training.save_result(outcome, name)
        except Exception as exc:  # noqa: BLE001 — say why, keep the trained model in the session
            st.error(error_text(exc))
            return
        state.register_model(path)  # in the workspace registry; "set as current model" makes it the champion
        state.flash("success", tr("model.saved", path=str(path)))
        st.rerun()


# ------------------------------------------------------------------ bundles


def bundles_section() -> None:
    bundles = list_bundles()
    demo = state.demo_bundle_dir()
    has_demo = (demo / "manifest.json").is_file()
    c1, c2, c3 = st.columns([3, 1, 1], vertical_alignment="bottom")
    if bundles:
        labels = {str(p): p.name for p in bundles}
        active = str(state.active_bundle()) if state.active_bundle() else None
        # follow the active bundle when it changed elsewhere (saved, demo button), keep the user's pick otherwise
        if active in labels and st.session_state.get(keys.BUNDLE_SYNCED) != active:
            st.session_state[keys.BUNDLE_SELECT] = active
            st.session_state[keys.BUNDLE_SYNCED] = active
        if st.session_state.get(keys.BUNDLE_SELECT) not in labels:
            st.session_state[keys.BUNDLE_SELECT] = next(iter(labels))
        pick = c1.selectbox(tr("model.bundles"), list(labels), format_func=labels.get, key=keys.BUNDLE_SELECT)
        if c2.button(tr("model.load_bundle"), key=keys.BUNDLE_LOAD_BUTTON, width="stretch"):
            _activate(pick)
    else:
        c1.info(tr("model.no_bundles", path=str(state.models_dir())))
    if c3.button(tr("model.demo_bundle"), key=keys.DEMO_BUNDLE_BUTTON, disabled=not has_demo, width="stretch",
                 help=None if has_demo else tr("model.no_demo_bundle", path=str(demo))):
        _activate(str(demo))
    active = state.active_bundle()
    if active is None:
        st.info(tr("common.no_bundle"))
        return
    from profile_core.bundle import read_manifest

    try:
        manifest = read_manifest(active)
    except Exception as exc:  # noqa: BLE001
        st.error(error_text(exc))
        return
    st.markdown(f"**{tr('model.active_bundle')}**")
    widgets.manifest_card(training.manifest_summary(manifest, state.lang()),
                          views.metrics_table({"test": (manifest.get("metrics") or {}).get("test") or {}},
                                              manifest.get("tasks", []), state.lang()))
    fingerprint = manifest.get("data_fingerprint")
    current = cache.active_feature_fingerprint()
    if fingerprint and current and fingerprint != current:
        st.caption(tr("model.other_data"))


def _activate(path: str) -> None:
    from profile_core.bundle import read_manifest

    try:
        manifest = read_manifest(path)
        cache.bundle(path, manifest.get("weights_sha256", ""))  # verifies the hash and the weights
    except Exception as exc:  # noqa: BLE001
        st.error(error_text(exc))
        return
    state.set_active_bundle(path)
    state.flash("success", tr("model.bundle_active", name=manifest.get("name", path)))
    st.rerun()

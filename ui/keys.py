"""Session-state and widget keys (kebab-case constants) and the page paths of the navigation."""

from __future__ import annotations

from enum import StrEnum


class PagePath(StrEnum):
    """Page scripts, relative to ``app.py``; the same values serve ``st.Page`` and ``st.switch_page``.

    The folder is ``app_pages/``, not ``pages/`` (see ``app.py``: a ``pages/`` folder makes a fresh server
    run deep links as legacy pages, without the router)."""

    DATA = "app_pages/data.py"
    MODEL = "app_pages/model.py"
    CUSTOMERS = "app_pages/customers.py"
    EXPLANATIONS = "app_pages/explanations.py"
    PORTFOLIO = "app_pages/portfolio.py"
    COHORTS = "app_pages/cohorts.py"
    MONITORING = "app_pages/monitoring.py"
    AUDIT = "app_pages/audit.py"


# ------------------------------------------------------------------ session state (not widgets)
DATASET = "active-dataset"  # name of the workspace dataset the pages show
BUNDLE = "active-bundle"  # path (str) of the model bundle the pages use
JOB = "training-job"  # ui.jobs.Job of this session (survives reruns)
BOOTSTRAPPED = "bootstrapped"  # first-start work done for this session
LAST_LOAD = "last-load"  # ui.loading.LoadOutcome of the latest upload / demo load
FLASH = "flash-message"  # (kind, text) shown once on the next run
NEW_VERSION_OF = "upload-new-version-of"  # the data set an upload may replace (ui.registry), else None
BUNDLE_SYNCED = "bundle-select-synced"  # the active bundle the model page's selectbox last followed

LANG = "lang"  # "zh" | "en" (kept here, not in the widget's state, so it survives page switches)
ROLE = "role"  # rm | analyst | auditor | admin
RM_ID = "rm-id"  # the relationship manager a 'rm' session acts as
REVEAL = "reveal-identities"  # admin only: show names / ID numbers / phones in full

# ------------------------------------------------------------------ sidebar widgets
LANG_RADIO = "sidebar-lang-radio"
REVEAL_TOGGLE = "sidebar-reveal-toggle"

# ------------------------------------------------------------------ data page
UPLOAD = "data-upload-file-uploader"
UPLOAD_DATASET = "data-upload-dataset-text-input"
UPLOAD_BUTTON = "data-upload-load-button"
DEMO_BUTTON = "data-load-demo-button"
DATASET_SELECT = "data-dataset-selectbox"
PREVIEW_ROWS = "data-preview-rows-number-input"
MAPPING_PREFIX = "data-mapping"  # key prefix of ui.mapping_step widgets on the data page
MAPPING_TOGGLE = "data-map-review-toggle"  # not under MAPPING_PREFIX + "-": the step clears those keys

# ------------------------------------------------------------------ model page
TASKS = "model-tasks-multiselect"
TASK_KIND = "model-task-kind-{label}"  # .format(label=...)
TASK_WEIGHT = "model-task-weight-{label}"
ARCH = "model-arch-selectbox"
WEIGHTING = "model-weighting-selectbox"
EPOCHS = "model-epochs-number-input"
BATCH = "model-batch-number-input"
LR = "model-lr-number-input"
SEED = "model-seed-number-input"
BASELINES = "model-baselines-checkbox"
HYBRID = "model-hybrid-checkbox"
TUNE = "model-tune-number-input"
TRAIN_BUTTON = "model-train-button"
CANCEL_BUTTON = "model-cancel-button"
CLEAR_BUTTON = "model-clear-job-button"
CURVE_VALUE = "model-curve-value-radio"
SAVE_NAME = "model-save-name-text-input"
SAVE_BUTTON = "model-save-button"
BUNDLE_SELECT = "model-bundle-selectbox"
BUNDLE_LOAD_BUTTON = "model-bundle-load-button"
DEMO_BUNDLE_BUTTON = "model-demo-bundle-button"

# ------------------------------------------------------------------ portfolio page
GROUP_BY = "portfolio-group-by-selectbox"
GO_MODEL_BUTTON = "portfolio-go-model-button"

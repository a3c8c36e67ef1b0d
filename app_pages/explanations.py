"""模型解释 · Explanations — PLACEHOLDER.

TODO(explanations page helper): replace this file with per-task SHAP (waterfall, global importance,
beeswarm, dependence) from profile_core.explain; charts.plot_waterfall / plot_importance / plot_beeswarm /
plot_dependence are ready. Keep the title key ``explanations.title``.
"""

from __future__ import annotations

import streamlit as st

from ui import widgets
from ui.state import tr

widgets.page_header("explanations.title", "explanations.caption")
st.info(tr("common.coming_soon"))

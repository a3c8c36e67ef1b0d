"""客户全景 · Customers — PLACEHOLDER.

TODO(customers page helper): replace this file with the search + panorama card page (build_profile_card from
profile_core.profile, rendered by a ui/ card renderer; charts.plot_score_gauge / plot_monthly_flows /
plot_login_heatmap / plot_waterfall are ready). Keep the title key ``customers.title``.
"""

from __future__ import annotations

import streamlit as st

from ui import widgets
from ui.state import tr

widgets.page_header("customers.title", "customers.caption")
st.info(tr("common.coming_soon"))

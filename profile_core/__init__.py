"""profile_core — the library behind 客户全景画像 (Customer Panorama).

Data → features → multi-task model → explanations → panorama card. No Streamlit import anywhere here.
"""

__version__ = "0.1.0"

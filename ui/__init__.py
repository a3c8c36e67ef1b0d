"""Streamlit-only helpers for the app: state keys, cached wrappers, the training job runner, renderers.

Nothing in ``profile_core`` imports this package; pages and ``app.py`` do.
"""

"""The shared engine: batch agents, source pipeline, windows and tables, publishing, DLQ,
codec and metrics. It knows no domain: ``app/engine/wiring.py`` builds a domain from its
declaration (``agents/``).
"""

"""The web side on Faust's web server: table views, probes, ``/metrics`` and the ``/ui/`` page
(``routes.py``; pure row logic in ``views.py``).
"""

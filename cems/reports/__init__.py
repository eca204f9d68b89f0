"""Reports: resident monthly savings, district zero-energy indicators, the operator's
daily report, and their HTML/PDF rendering.

Pure arithmetic lives in :mod:`cems.reports.savings` and :mod:`cems.reports.zeb`; store
access in :mod:`cems.reports.data`; orchestration in :mod:`cems.reports.resident` and
:mod:`cems.reports.daily`; output in :mod:`cems.reports.render`.
"""

"""Reports: resident monthly savings, district zero-energy indicators, the operator's
daily report, and their HTML/PDF rendering.

Every figure comes from :mod:`cems.accounting` (the site's flows, figures, costs, CO2, the
ZEB rule); store access beyond the flows is in :mod:`cems.reports.data` (through
:class:`~cems.store.TelemetryStore` methods, no SQL here); orchestration in
:mod:`cems.reports.resident`, :mod:`cems.reports.daily` and :mod:`cems.reports.district`;
output in :mod:`cems.reports.render`.
"""

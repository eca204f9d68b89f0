"""CEMS: a community energy management system for zero-energy districts.

The application package: site configuration, CLI and (later) runtime. It uses the
independent libraries :mod:`tariffs`, :mod:`optimizer` and :mod:`device_drivers`,
which never import it.
"""

__version__ = "0.1.0"

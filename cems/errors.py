"""The application's exception hierarchy, rooted at :class:`CemsError`.

Every error a user can cause (a bad file, a bad argument, an impossible request) is a
``CemsError``; the CLI prints its message and exits with status 2, never a traceback.
The libraries (``tariffs``, ``optimizer``, ``device_drivers``) cannot import ``cems``;
each has its own root error, and :func:`translate_library_errors` maps them onto this
hierarchy at the boundary.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass


class CemsError(Exception):
    """Root of every error the application reports to a user."""


@dataclass(frozen=True)
class Problem:
    """One problem found in a configuration or input file.

    ``path`` is the location inside the document (``assets.ess[0].soc_max``),
    ``message`` says what is wrong and what is allowed, ``line`` is the 1-based line of
    the offending value in the source file when known.
    """

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"  (line {self.line})" if self.line is not None else ""
        prefix = f"{self.path}: " if self.path else ""
        return f"{prefix}{self.message}{where}"


class ConfigError(CemsError):
    """A site configuration is invalid; carries one :class:`Problem` per fault."""

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "\n".join(str(p) for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


class InputError(CemsError):
    """A data file or command-line argument is invalid (names the row or field)."""


class TariffError(CemsError):
    """A tariff could not be applied (unknown plan, date outside every version, ...)."""


class DeviceError(CemsError):
    """A device could not be reached, read or commanded."""


class InfeasibleError(CemsError):
    """An optimisation problem has no feasible schedule; the message names the cause."""


class OptimizationError(CemsError):
    """The optimiser failed for another reason (time limit without a schedule, ...)."""


#: The libraries' root errors and the application errors they become, as
#: (module, attribute, target). Looked up only in modules already imported: an error of a
#: library that was never imported cannot have been raised, and importing ``optimizer``
#: (Pyomo, HiGHS) just to translate would cost every command seconds of start-up.
_LIBRARY_ERRORS: tuple[tuple[str, str, type[CemsError]], ...] = (
    ("tariffs", "TariffError", TariffError),
    ("optimizer", "InfeasibleError", InfeasibleError),
    ("optimizer", "OptimizerError", OptimizationError),
    ("device_drivers", "DeviceError", DeviceError),
)


def _translation(exc: BaseException) -> type[CemsError] | None:
    """The application error for a library error ``exc``, or None if it is not one."""
    for module_name, name, target in _LIBRARY_ERRORS:
        module = sys.modules.get(module_name)
        source = getattr(module, name, None) if module is not None else None
        if isinstance(source, type) and isinstance(exc, source):
            return target
    return None


@contextmanager
def translate_library_errors() -> Iterator[None]:
    """Re-raise the libraries' own root errors as the matching :class:`CemsError`.

    Use around calls into ``tariffs``, ``optimizer`` or ``device_drivers`` at the
    application boundary so the CLI needs to know only one hierarchy.
    """
    try:
        yield
    except CemsError:
        raise
    except Exception as exc:
        target = _translation(exc)
        if target is None:
            raise
        raise target(str(exc)) from exc

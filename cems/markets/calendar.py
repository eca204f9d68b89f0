"""The KPX demand-response calendar: which dates are 평일 (weekdays) and which are holidays.

규칙 제12.4.3.1조 ① and 별표28 1.1-1.6 define a 평일 as a day that is neither a Saturday nor a
"공휴일" of 「관공서의 공휴일에 관한 규정」. That regulation's 제2조 lists every 공휴일: Sundays
(1호), the national and traditional holidays, election days of expiring terms (10호의2) and
"기타 정부에서 수시 지정하는 날" (11호), the 임시공휴일 the government designates from time to
time (e.g. 2025-06-03, the presidential by-election day). So for KPX an 임시공휴일 is a
공휴일 like any other: not a 평일, not a reference day of the weekday CBL methods, a
reference day of H-Mid(4/6), and no day for a 국민DR event. That is the default here
(``count_temporary_holidays=True``).

Public holidays come from the ``holidays`` package (``holidays.KR``), which lists the
임시공휴일 too. Only KEPCO's 기본공급약관 carves them out (별표3 단서), for its tariff
calendar (``tariffs``, unchanged); :data:`TEMPORARY_HOLIDAYS` is that dated list, and
``DrCalendar(count_temporary_holidays=False)`` treats its days as ordinary weekdays, e.g. to
compare with a baseline computed that way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

import holidays

from tariffs import temporary_holidays

#: 임시공휴일 listed by ``holidays.KR``: the dated list KEPCO's calendar leaves out
#: (``tariffs/data/calendar.yaml``, kept in one place). Holidays for KPX unless
#: ``DrCalendar(count_temporary_holidays=False)``.
TEMPORARY_HOLIDAYS: tuple[date, ...] = tuple(sorted(temporary_holidays()))


@dataclass(frozen=True)
class DrCalendar:
    """Holiday rules for CBL reference days and event windows.

    ``extra_holidays`` adds dates (e.g. a 임시공휴일 designated after the package release);
    ``count_temporary_holidays=False`` treats the dates in :data:`TEMPORARY_HOLIDAYS` as
    ordinary days (KEPCO's reading, not KPX's: see the module notes).
    """

    count_temporary_holidays: bool = True
    extra_holidays: frozenset[date] = field(default_factory=frozenset)
    temporary_holidays: frozenset[date] = frozenset(TEMPORARY_HOLIDAYS)

    @cached_property
    def _kr(self) -> holidays.HolidayBase:
        return holidays.country_holidays("KR")

    def is_public_holiday(self, day: date) -> bool:
        """True for a 공휴일 other than an ordinary Sunday (package holidays, overrides applied)."""
        if day in self.extra_holidays:
            return True
        if not self.count_temporary_holidays and day in self.temporary_holidays:
            return False
        return day in self._kr

    def is_weekday(self, day: date) -> bool:
        """True for a KPX 평일: Monday-Friday and not a public holiday."""
        return day.weekday() < 5 and not self.is_public_holiday(day)

    def is_holiday_or_saturday(self, day: date) -> bool:
        """True for an H-Mid(4/6) reference-day candidate: Saturday, Sunday or 공휴일."""
        return day.weekday() >= 5 or self.is_public_holiday(day)

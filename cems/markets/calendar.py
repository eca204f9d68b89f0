"""The KPX demand-response calendar: which dates are 평일 (weekdays) and which are holidays.

규칙 제12.4.3.1조 ① and 별표28 1.1-1.6 define a 평일 as a day that is neither a Saturday nor a
"공휴일" of 「관공서의 공휴일에 관한 규정」 (Sundays are 공휴일 under that regulation, 제2조 1호).
Public holidays come from the ``holidays`` package (``holidays.KR``), which also lists the
ad-hoc 임시공휴일 that the government designates from time to time. KEPCO's 기본공급약관
(별표3 단서 3) excludes those explicitly, and this project treats them the same way for KPX
by default: :data:`TEMPORARY_HOLIDAYS` is a dated override list of such days, which count as
ordinary weekdays unless ``count_temporary_holidays=True``. The KPX text itself does not say
whether 임시공휴일 are excluded (see ``docs/markets.md``); keep the list up to date when the
government designates a new one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cached_property

import holidays

from tariffs import temporary_holidays

#: 임시공휴일 listed by ``holidays.KR`` that are treated as ordinary days by default: the
#: same dated list KEPCO's calendar uses (``tariffs/data/calendar.yaml``), kept in one place.
TEMPORARY_HOLIDAYS: tuple[date, ...] = tuple(sorted(temporary_holidays()))


@dataclass(frozen=True)
class DrCalendar:
    """Holiday rules for CBL reference days and event windows.

    ``extra_holidays`` adds dates (e.g. a temporary holiday designated after the package
    release that you do want to count); ``count_temporary_holidays`` makes the dates in
    :data:`TEMPORARY_HOLIDAYS` holidays again.
    """

    count_temporary_holidays: bool = False
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

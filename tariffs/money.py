"""Exact money arithmetic and the bill's rounding rules, each with its source.

All amounts are :class:`~decimal.Decimal` until a rounding point, then ``int`` won.

- 사용전력량 and 요금적용전력: whole kWh and whole kW, the first digit below rounded half
  up: 약관 제7조 ① (끝수 계산: 계산단위 미만의 끝수는 계산단위 이하 첫째자리에서
  반올림; 요금적용전력 1kW, 사용전력량 1kWh) [OK]. Interval data are summed per billing
  period (TOU), per month (seasonal, residential) first, then rounded; a month split by
  일할계산 rounds each segment's sums.

- 기본요금, 전력량요금, 기후환경요금, 연료비조정요금: each truncated to the won
  (원 미만 절사). [?] Practice of KEPCO bill calculators (dugurs/kwh_to_won); the 약관
  text in ``shared/reference/sources`` does not state it.
- 부가가치세: 10 % of 전기요금계, rounded to the won half up (원 미만 4사5입) [OK]
  (facts 1.1; kwise xlsx note "원미만 4사 5입").
- 전력산업기반기금: rate x 전기요금계, truncated to 10 won (10원 미만 절사) [OK] (facts 1.1).
- 청구금액: 전기요금계 + VAT + 기금, truncated to 10 won: 약관 제7조 ② (요금 등의 청구금액에
  10원 미만의 끝수가 있을 때에는 국고금관리법에서 정한 바에 따라 그 끝수는 계산하지
  않습니다) [OK].
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

ONE = Decimal(1)
TEN = Decimal(10)


def truncate_won(amount: Decimal) -> int:
    """Drop the fraction of a won (toward zero): 원 미만 절사."""
    return int(amount.quantize(ONE, rounding=ROUND_DOWN))


def round_half_up_won(amount: Decimal) -> int:
    """Round to the nearest won, halves up: 원 미만 4사5입 (VAT)."""
    return int(amount.quantize(ONE, rounding=ROUND_HALF_UP))


def truncate_10_won(amount: Decimal) -> int:
    """Drop the units digit (toward zero): 10원 미만 절사 (기금, 청구금액)."""
    return int((amount / TEN).quantize(ONE, rounding=ROUND_DOWN)) * 10


def whole_units(value: float | Decimal) -> Decimal:
    """Round a kWh or kW quantity to a whole unit, half up (약관 제7조 ①)."""
    exact = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    # A float sum of decimal readings can land a hair below .5; settle it at 1e-6 first.
    return exact.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP).quantize(
        ONE, rounding=ROUND_HALF_UP
    )

"""Report wording in Korean and English (one table; templates look labels up by key)."""

from __future__ import annotations

from cems.errors import InputError

LANGS = ("ko", "en")

TEXT: dict[str, dict[str, str]] = {
    "resident_title": {"ko": "우리집 에너지 절감 리포트", "en": "Household energy savings report"},
    "household": {"ko": "세대", "en": "Household"},
    "month": {"ko": "기간", "en": "Month"},
    "plan": {"ko": "요금제", "en": "Tariff plan"},
    "actual_bill": {"ko": "실제 전기요금 (한전 계량기)",
                    "en": "Actual bill (your KEPCO meter)"},
    "counterfactual_bill": {"ko": "설비가 없었다면 낼 요금 (우리 집 사용량 전체)",
                            "en": "Bill without the assets (on all your use)"},
    "bill_saving": {"ko": "전기요금 절감액", "en": "Bill saving"},
    "dr_reward": {"ko": "국민DR 보상금", "en": "Demand-response rewards"},
    "brokerage_share": {"ko": "전력중개 수익 배분", "en": "Brokerage income share"},
    "total_benefit": {"ko": "총 혜택", "en": "Total benefit"},
    "consumption_kwh": {"ko": "우리 집 사용량", "en": "Your use"},
    "import_kwh": {"ko": "한전 계량기로 산 전력", "en": "Bought through your KEPCO meter"},
    "supplied_kwh": {"ko": "공동체 설비가 공급한 전력", "en": "Supplied by community assets"},
    "renewable_kwh": {"ko": "그중 태양광", "en": "of which solar PV"},
    "fuel_cell_kwh": {"ko": "그중 연료전지", "en": "of which fuel cell"},
    "storage_kwh": {"ko": "그중 배터리·V2G", "en": "of which batteries and V2G"},
    "self_sufficiency": {"ko": "자급률 (공급 ÷ 사용량)",
                         "en": "Self-sufficiency (supplied ÷ your use)"},
    "co2_avoided": {"ko": "줄인 온실가스", "en": "CO2 avoided"},
    "no_own_bill": {"ko": "세대별 한전 요금 없음 (단지 전체로 청구)",
                    "en": "no bill of your own (KEPCO bills the complex)"},
    "how_supplied": {"ko": "공동체 설비가 우리 집에 주는 혜택",
                     "en": "How the community's assets reach you"},
    "daily_chart": {"ko": "일별 전력 사용", "en": "Daily electricity"},
    "trend": {"ko": "최근 12개월", "en": "Last 12 months"},
    "no_data": {"ko": "자료 없음", "en": "no data"},
    "bill_items": {"ko": "요금 내역", "en": "Bill items"},
    "base": {"ko": "기본요금", "en": "Base charge"},
    "energy": {"ko": "전력량요금", "en": "Energy charge"},
    "climate": {"ko": "기후환경요금", "en": "Climate charge"},
    "fuel": {"ko": "연료비조정요금", "en": "Fuel adjustment"},
    "vat": {"ko": "부가가치세", "en": "VAT"},
    "fund": {"ko": "전력산업기반기금", "en": "Power industry fund"},
    "total": {"ko": "청구금액", "en": "Total billed"},
    "with_assets": {"ko": "실제", "en": "Actual"},
    "without_assets": {"ko": "설비 없을 때", "en": "Without assets"},
    "notes": {"ko": "참고", "en": "Notes"},
    "method": {"ko": "절감액 = 우리 집 사용량(한전 계량기 + 공동체 공급)의 요금 − 한전 계량기의 "
                     "요금, 둘 다 한전 요금표로 계산.",
               "en": "Saving = the bill on all your use (KEPCO meter + community supply) − the "
                     "bill on your KEPCO meter, both on the KEPCO tariff."},
    "co2_method": {"ko": "줄인 온실가스 = 태양광분 × 전력 배출계수 + 연료전지분 × (전력 배출계수 − "
                         "연료전지 연료의 배출), 배터리·V2G분은 0.",
                   "en": "CO2 avoided = solar part × grid factor + fuel-cell part × (grid "
                         "factor − the fuel cells' fuel emissions); batteries and V2G count 0."},
    "daily_title": {"ko": "운영 일일 보고서", "en": "Operator daily report"},
    "date": {"ko": "날짜", "en": "Date"},
    "kpis": {"ko": "핵심 지표", "en": "Key figures"},
    "plan_vs_actual": {"ko": "계획 대비 실적", "en": "Plan against actual"},
    "asset": {"ko": "설비", "en": "Asset"},
    "planned_kwh": {"ko": "계획 kWh", "en": "Planned kWh"},
    "actual_kwh": {"ko": "실적 kWh", "en": "Actual kWh"},
    "mae_kw": {"ko": "평균절대오차 kW", "en": "Mean abs. error kW"},
    "alarms": {"ko": "경보", "en": "Alarms"},
    "forecast_accuracy": {"ko": "예측 정확도 (nMAE %)", "en": "Forecast accuracy (nMAE %)"},
    "bids": {"ko": "입찰", "en": "Bids"},
    "dr_events": {"ko": "DR 이벤트", "en": "DR events"},
    "none": {"ko": "없음", "en": "none"},
    "won": {"ko": "원", "en": "KRW"},
    "logout": {"ko": "로그아웃", "en": "Log out"},
    "zeb": {"ko": "제로에너지 지표", "en": "Zero-energy indicators"},
}


EXPLANATION: dict[str, dict[str, str]] = {
    "behind_meter": {
        "ko": "{month_ko}에 공동체 설비가 우리 집 사용량 중 {kwh} kWh를 공급했습니다: 15분마다 "
              "설비가 공급한 전력의 {pct} %(우리 집 지분)까지, 그 15분 동안 우리 집이 쓴 양을 "
              "넘지 않게 나눕니다.",
        "en": "In {month_en} the community's assets supplied {kwh} kWh of your use: every 15 "
              "minutes you get up to your {pct} % share of what they supplied, never more than "
              "you used in those 15 minutes.",
    },
    "own_connection": {
        "ko": "우리 집은 한전에 직접 연결된 자체 계량기를 쓰므로 공동체 설비의 전력이 우리 집 "
              "계량기 안쪽으로 공급되지 않아 전기요금 절감액은 0원이며, 혜택은 국민DR 보상금과 "
              "지분 {pct} %만큼의 전력중개 수익 배분입니다.",
        "en": "Your home has its own KEPCO connection, so none of the community's energy "
              "reaches behind your meter and your bill saving is 0 KRW; you benefit through "
              "demand-response rewards and your {pct} % share of the brokerage income.",
    },
    "through_site": {
        "ko": "한전은 우리 집이 아니라 단지 전체에 요금을 청구하므로 세대별 한전 요금과 절감액은 "
              "없으며, 공동체 설비는 단지 전체 요금을 줄이고 우리 집은 국민DR 보상금과 지분 "
              "{pct} %만큼의 전력중개 수익 배분을 받습니다.",
        "en": "KEPCO bills the whole complex, not your home, so there is no household bill or "
              "bill saving to show; the community's assets lower the complex's bill, and you "
              "receive demand-response rewards and your {pct} % share of the brokerage "
              "income.",
    },
}
"""One plain sentence per delivery (:data:`cems.reports.savings.DELIVERIES`) and language."""

MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
             "September", "October", "November", "December")


def explanation(lang: str, delivery: str, month: str, supplied_kwh: float,
                asset_share: float) -> str:
    """The allocation sentence of a household month (``month`` YYYY-MM) in ``lang``."""
    if lang not in LANGS:
        raise InputError(f"language {lang!r}: use one of {', '.join(LANGS)}")
    year, number = int(month[:4]), int(month[5:7])
    return EXPLANATION[delivery][lang].format(
        month_ko=f"{year}년 {number}월", month_en=f"{MONTHS_EN[number - 1]} {year}",
        kwh=f"{supplied_kwh:,.1f}", pct=f"{asset_share * 100:.4g}")


def texts(lang: str) -> dict[str, str]:
    """All labels in ``lang`` (ko or en)."""
    if lang not in LANGS:
        raise InputError(f"language {lang!r}: use one of {', '.join(LANGS)}")
    return {key: value[lang] for key, value in TEXT.items()}

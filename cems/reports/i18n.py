"""Report wording in Korean and English (one table; templates look labels up by key)."""

from __future__ import annotations

from cems.errors import InputError

LANGS = ("ko", "en")

TEXT: dict[str, dict[str, str]] = {
    "resident_title": {"ko": "우리집 에너지 절감 리포트", "en": "Household energy savings report"},
    "household": {"ko": "세대", "en": "Household"},
    "month": {"ko": "기간", "en": "Month"},
    "plan": {"ko": "요금제", "en": "Tariff plan"},
    "actual_bill": {"ko": "실제 전기요금 (공동체 설비 포함)",
                    "en": "Actual bill (with the community's assets)"},
    "counterfactual_bill": {"ko": "설비가 없었다면 낼 요금", "en": "Bill without the assets"},
    "bill_saving": {"ko": "전기요금 절감액", "en": "Bill saving"},
    "dr_reward": {"ko": "국민DR 보상금", "en": "Demand-response rewards"},
    "brokerage_share": {"ko": "전력중개 수익 배분", "en": "Brokerage income share"},
    "total_benefit": {"ko": "총 혜택", "en": "Total benefit"},
    "import_kwh": {"ko": "한전에서 산 전력", "en": "Bought from the grid"},
    "supplied_kwh": {"ko": "공동체 설비가 공급한 전력", "en": "Supplied by community assets"},
    "renewable_kwh": {"ko": "그중 태양광", "en": "of which solar PV"},
    "self_sufficiency": {"ko": "자급률 (시간 일치)", "en": "Self-sufficiency (time-matched)"},
    "co2_avoided": {"ko": "줄인 온실가스", "en": "CO2 avoided"},
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
    "method": {"ko": "절감액 = 설비가 없었다면 낼 요금 − 실제 요금 (한전 요금표로 계산).",
               "en": "Saving = bill without the assets − actual bill (KEPCO tariff)."},
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


def texts(lang: str) -> dict[str, str]:
    """All labels in ``lang`` (ko or en)."""
    if lang not in LANGS:
        raise InputError(f"language {lang!r}: use one of {', '.join(LANGS)}")
    return {key: value[lang] for key, value in TEXT.items()}

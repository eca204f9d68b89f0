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
    # pages (web): navigation, the resident month without data, the daily report
    "prev_month": {"ko": "이전 달", "en": "Previous month"},
    "next_month": {"ko": "다음 달", "en": "Next month"},
    "prev_day": {"ko": "전날", "en": "Previous day"},
    "next_day": {"ko": "다음 날", "en": "Next day"},
    "today": {"ko": "오늘", "en": "Today"},
    "show": {"ko": "보기", "en": "Show"},
    "other_lang": {"ko": "English", "en": "한국어"},
    "dashboard": {"ko": "대시보드", "en": "Dashboard"},
    "daily_report": {"ko": "일일 보고서", "en": "Daily report"},
    "no_month_data_title": {"ko": "이 달의 자료가 아직 없습니다",
                            "en": "No data for this month yet"},
    "no_month_data": {"ko": "{month}의 계량 자료가 아직 들어오지 않았습니다. 자료가 들어오면 "
                            "이 화면에 이달의 전기요금과 절감액이 표시됩니다.",
                      "en": "No meter data for {month} has arrived yet. Once it does, this "
                            "page shows the month's bill and saving."},
    "no_month_data_past_title": {"ko": "이 달의 자료가 없습니다", "en": "No data for this month"},
    "no_month_data_past": {"ko": "{month}의 계량 자료가 없습니다. 다른 달을 골라 보세요.",
                           "en": "There is no meter data for {month}. Pick another month."},
    "see_prev_month": {"ko": "{month} 리포트 보기", "en": "See the report for {month}"},
    "operator_detail": {"ko": "운영자용 상세", "en": "Detail for operators"},
    "tariff_notes": {"ko": "요금 계산 메모 (운영자용)", "en": "Tariff notes (operators only)"},
    "system_notes": {"ko": "시스템 메모 (원문, 운영자용)",
                     "en": "System notes (operators only)"},
    "no_day_data": {"ko": "이 날짜에는 측정 자료가 없습니다. 지표와 실적 그래프는 자료가 "
                          "들어오면 표시됩니다 (자료가 없는 구간은 0으로 세지 않습니다).",
                    "en": "No measurements for this day. The figures and the actual line "
                          "appear once data arrives (intervals without data are not shown "
                          "as 0)."},
    "partial_day": {"ko": "측정 자료: 15분 구간 {measured}/{intervals}개 ({first}–{last})",
                    "en": "Measured: {measured} of {intervals} 15-minute intervals "
                          "({first}–{last})"},
    "no_plan": {"ko": "이 날짜에 저장된 운영 계획이 없습니다.",
                "en": "No stored plan covers this day."},
    "cost_unavailable": {"ko": "이 날짜의 비용은 계산할 수 없습니다 (요금표 없음).",
                         "en": "The day's cost cannot be computed (no tariff for it)."},
    "grid_chart": {"ko": "수전 전력: 계획 대비 실적 (kW, + 수전)",
                   "en": "Grid power, plan against actual (kW, + import)"},
    "actual": {"ko": "실적", "en": "Actual"},
    "planned": {"ko": "계획", "en": "Plan"},
    "zoom_hint": {"ko": "끌어서 확대, 두 번 눌러 전체 보기; 값은 그래프 위에 올리거나 누르면 "
                        "보입니다.",
                  "en": "Drag to zoom, double-click to reset; hover or tap for values."},
    "reset_zoom": {"ko": "전체 보기", "en": "Reset zoom"},
    "round": {"ko": "{n}차", "en": "round {n}"},
    "market": {"ko": "시장", "en": "Market"},
    "round_label": {"ko": "차수", "en": "Round"},
    "trade_date": {"ko": "거래일", "en": "Trading day"},
    "submitted": {"ko": "제출", "en": "Submitted"},
    "volume_kwh": {"ko": "입찰량 kWh", "en": "Volume kWh"},
    "raised": {"ko": "발생", "en": "Raised"},
    "cleared": {"ko": "해제", "en": "Cleared"},
    "severity": {"ko": "등급", "en": "Severity"},
    "device": {"ko": "설비", "en": "Device"},
    "alarm": {"ko": "경보", "en": "Alarm"},
    "message": {"ko": "내용", "en": "Message"},
    "event": {"ko": "이벤트", "en": "Event"},
    "start": {"ko": "시작", "en": "Start"},
    "end": {"ko": "종료", "en": "End"},
    "kind": {"ko": "종류", "en": "Kind"},
    "reduction_kw": {"ko": "감축량 kW", "en": "Reduction kW"},
    "status": {"ko": "상태", "en": "Status"},
    "forecast": {"ko": "예측", "en": "Forecast"},
    "brokerage_title": {"ko": "입찰 대비 거래량 (거래용 계량기)",
                        "en": "Bid against delivered (trading meters)"},
    "brokerage_summary": {
        "ko": "입찰 {bid} kWh, 거래 {delivered} kWh, 편차 {deviation} kWh = {cost} 원 "
              "({penalty} 원/kWh); KPX 예측 오차율 (별표2 Ⅴ) {error} %",
        "en": "bid {bid} kWh, delivered {delivered} kWh, deviation {deviation} kWh = {cost} KRW "
              "at {penalty} KRW/kWh; KPX forecast error (별표2 Ⅴ) {error} %"},
    "hour": {"ko": "시각", "en": "Hour"},
    "bid_kwh": {"ko": "입찰 kWh", "en": "Bid kWh"},
    "delivered_kwh": {"ko": "거래 kWh", "en": "Delivered kWh"},
    "error_pct": {"ko": "오차 %", "en": "Error %"},
    "day_of_month": {"ko": "일", "en": "Day"},
    "bill_krw": {"ko": "요금 (원)", "en": "Bill (KRW)"},
    "energy_kwh": {"ko": "전력량 (kWh)", "en": "Energy (kWh)"},
    # the operator/broker dashboard
    "ops_title": {"ko": "운영 현황", "en": "Operations"},
    "live_power": {"ko": "실시간 전력 (kW)", "en": "Live power (kW)"},
    "live_as_of": {"ko": "{time} 기준 (최근 {minutes}분)",
                   "en": "as of {time} (last {minutes} min)"},
    "live_now": {"ko": "실시간 · {time} 기준", "en": "live · as of {time}"},
    "live_empty": {"ko": "최근 {minutes}분 동안 측정값 없음",
                   "en": "no readings in the last {minutes} minutes"},
    "live_expired": {"ko": "세션이 끝났습니다 · 다시 로그인하세요",
                     "en": "session ended · log in again"},
    "live_closed": {"ko": "연결 끊김 · 페이지를 새로 고치세요",
                    "en": "disconnected · reload the page"},
    "time": {"ko": "시각", "en": "Time"},
    "quality": {"ko": "상태", "en": "Quality"},
    "open_alarms": {"ko": "미해제 경보", "en": "Open alarms"},
    "reload": {"ko": "새로 고침", "en": "Reload"},
    "reload_hint": {"ko": "계획·지표는 새로 고침할 때, 실시간 전력은 자동으로 갱신됩니다.",
                    "en": "Plan and figures update on reload; live power updates by itself."},
    "kpis_of": {"ko": "핵심 지표 ({day})", "en": "Key figures ({day})"},
    # login and error pages
    "login_title": {"ko": "CEMS 로그인", "en": "CEMS log in"},
    "username": {"ko": "사용자", "en": "User"},
    "password": {"ko": "비밀번호", "en": "Password"},
    "login": {"ko": "로그인", "en": "Log in"},
    "home": {"ko": "처음으로", "en": "Home"},
    "login_expired": {"ko": "로그인 양식이 만료되었습니다. 다시 시도하세요",
                      "en": "The login form expired; please try again"},
}

#: Login and error messages by HTTP status (the server's English detail is shown beside).
STATUS_TEXT: dict[int, dict[str, str]] = {
    400: {"ko": "요청을 처리할 수 없습니다", "en": "The request cannot be handled"},
    401: {"ko": "사용자 이름 또는 비밀번호가 틀렸습니다", "en": "Wrong username or password"},
    403: {"ko": "이 페이지를 볼 권한이 없습니다", "en": "You may not see this page"},
    404: {"ko": "찾을 수 없습니다", "en": "Not found"},
    413: {"ko": "요청이 너무 큽니다", "en": "The request is too large"},
    422: {"ko": "입력값이 올바르지 않습니다", "en": "A value in the request is not valid"},
    429: {"ko": "실패한 로그인이 너무 많습니다. 5분 뒤에 다시 시도하세요",
          "en": "Too many failed logins; try again in 5 minutes"},
    503: {"ko": "잠시 후 다시 시도하세요", "en": "Please try again shortly"},
}

#: Names of codes the pages show (asset kinds, alarm codes and severities, markets, DR event
#: kinds and statuses, reading qualities, roles, forecast accuracy keys); :func:`label`
#: looks a code up and falls back to the code itself.
LABELS: dict[str, dict[str, dict[str, str]]] = {
    "kind": {
        "pv": {"ko": "태양광", "en": "PV"},
        "ess": {"ko": "ESS (배터리)", "en": "Battery (ESS)"},
        "fuel_cell": {"ko": "연료전지", "en": "Fuel cell"},
        "ev_charger": {"ko": "전기차 충전기", "en": "EV charger"},
        "grid": {"ko": "수전 계량기", "en": "Grid meter"},
    },
    "alarm": {
        "comm_lost": {"ko": "통신 끊김", "en": "Communication lost"},
        "stale": {"ko": "자료 갱신 멈춤", "en": "Stale data"},
        "meter_stale": {"ko": "계량기 자료 갱신 멈춤", "en": "Meter data stale"},
        "grid_meter_unknown": {"ko": "수전 계량값 모름 (보수 운전)",
                               "en": "Grid meter unknown (conservative dispatch)"},
        "no_failsafe": {"ko": "안전 복귀 설정 없음", "en": "No failsafe"},
        "write_failed": {"ko": "제어 명령 실패", "en": "Setpoint write failed"},
        "plan_failed": {"ko": "운영 계획 실패", "en": "Planning failed"},
        "bid_failed": {"ko": "입찰 실패", "en": "Bid failed"},
        "bid_missed": {"ko": "입찰 마감 놓침", "en": "Bid deadline missed"},
    },
    "severity": {
        "critical": {"ko": "심각", "en": "Critical"},
        "warning": {"ko": "주의", "en": "Warning"},
        "info": {"ko": "정보", "en": "Info"},
    },
    "market": {
        "brokerage": {"ko": "소규모 전력중개", "en": "Brokerage"},
        "dr": {"ko": "국민DR", "en": "Demand response"},
    },
    "dr_kind": {
        "reduce": {"ko": "감축", "en": "Reduce"},
        "increase": {"ko": "증가 (플러스 DR)", "en": "Increase"},
    },
    "dr_status": {
        "scheduled": {"ko": "예정", "en": "Scheduled"},
        "accepted": {"ko": "참여", "en": "Accepted"},
        "opted_out": {"ko": "불참", "en": "Opted out"},
        "cancelled": {"ko": "취소", "en": "Cancelled"},
        "active": {"ko": "진행 중", "en": "Active"},
        "settled": {"ko": "정산 완료", "en": "Settled"},
    },
    "quality": {
        "good": {"ko": "정상", "en": "good"},
        "stale": {"ko": "지연", "en": "stale"},
        "invalid": {"ko": "무효", "en": "invalid"},
        "comm_lost": {"ko": "통신 끊김", "en": "comm. lost"},
    },
    "role": {
        "operator": {"ko": "운영자", "en": "operator"},
        "broker": {"ko": "중개사업자", "en": "broker"},
        "resident": {"ko": "주민", "en": "resident"},
    },
    "forecast": {
        "demand_nmae_pct": {"ko": "부하 예측 오차 (nMAE)", "en": "Load forecast error (nMAE)"},
        "pv_nmae_pct": {"ko": "태양광 예측 오차 (nMAE)", "en": "PV forecast error (nMAE)"},
    },
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


def label(group: str, code: str | None, lang: str) -> str:
    """The name of ``code`` in ``group`` of :data:`LABELS` in ``lang``; the code itself
    when it has none (a new code shows up rather than disappears)."""
    if code is None:
        return ""
    names = LABELS.get(group, {}).get(str(code))
    return names[lang] if names else str(code)


def status_text(status: int, lang: str) -> str:
    """A short message for an HTTP status in ``lang`` (``status`` itself when unknown)."""
    entry = STATUS_TEXT.get(status)
    return entry[lang] if entry else str(status)


def plan_name(plan_id: str | None, lang: str) -> str:
    """A KEPCO plan's name (``residential_low`` → 주택용 저압 / Residential, low voltage),
    from the newest version of the plan's tariff file; the id when the plan is unknown."""
    if not plan_id:
        return ""
    try:
        import tariffs

        newest = tariffs.get_plan(plan_id)[-1]
    except Exception:  # an unknown plan: show its id rather than fail the page
        return plan_id
    return newest.name_ko if lang == "ko" else newest.name_en


def month_label(month: str, lang: str) -> str:
    """``2026-04`` as 2026년 4월 / April 2026."""
    year, number = int(month[:4]), int(month[5:7])
    return f"{year}년 {number}월" if lang == "ko" else f"{MONTHS_EN[number - 1]} {year}"


WEEKDAYS_KO = ("월", "화", "수", "목", "금", "토", "일")
WEEKDAYS_EN = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def day_label(day: str, lang: str) -> str:
    """``2026-04-10`` as 2026년 4월 10일 (금) / Fri 10 April 2026."""
    import datetime as _dt

    d = _dt.date.fromisoformat(day[:10])
    if lang == "ko":
        return f"{d.year}년 {d.month}월 {d.day}일 ({WEEKDAYS_KO[d.weekday()]})"
    return f"{WEEKDAYS_EN[d.weekday()]} {d.day} {MONTHS_EN[d.month - 1]} {d.year}"


def local_time(iso: str | None, lang: str, day: str | None = None) -> str:
    """An ISO 8601 time (the reports write them in the site's zone) as the clock time of
    its own offset: ``09:00`` on ``day`` (YYYY-MM-DD), else with its date (4월 11일 09:00 /
    11 Apr 09:00); empty for None."""
    if not iso:
        return ""
    import datetime as _dt

    t = _dt.datetime.fromisoformat(str(iso))
    clock = f"{t.hour:02d}:{t.minute:02d}"
    if day is not None and t.date().isoformat() == day[:10]:
        return clock
    if lang == "ko":
        return f"{t.month}월 {t.day}일 {clock}"
    return f"{t.day} {MONTHS_EN[t.month - 1][:3]} {clock}"


def texts(lang: str) -> dict[str, str]:
    """All labels in ``lang`` (ko or en)."""
    if lang not in LANGS:
        raise InputError(f"language {lang!r}: use one of {', '.join(LANGS)}")
    return {key: value[lang] for key, value in TEXT.items()}

"""Markets: KPX small-scale brokerage and citizen demand response (국민DR, 플러스DR).

Pure arithmetic lives in :mod:`cems.markets.cbl` (baselines, KPX 별표28),
:mod:`cems.markets.dr_settlement` (compensation, 별표26; household rewards),
:mod:`cems.markets.dr_plan` (import bounds for the planner) and
:mod:`cems.markets.brokerage` (forecast error and incentive, 규칙 제14장 and 별표2 Ⅴ).
File formats and validation live in :mod:`cems.markets.usage`, :mod:`cems.markets.events`,
:mod:`cems.markets.portfolio` and :mod:`cems.markets.bids`; the calendar of 평일 and
holidays in :mod:`cems.markets.calendar`. The event lifecycle: :mod:`cems.markets.openadr_ven`
(an OpenADR 2.0b VEN that opts in or out) and :mod:`cems.markets.dr_workflow` (CBL cap ->
plan -> settlement -> store); :mod:`cems.markets.brokerage_store` writes a settled
brokerage day into the store for the resident report. See ``docs/markets.md``.
"""

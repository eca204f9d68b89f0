"""Rolling re-plans reuse the compiled model and give the plan a fresh build would give."""

from __future__ import annotations

from datetime import timedelta

import pytest
from runtime_harness import SCENARIO_TIMEOUT_S, T0, Harness, run

from cems.runtime.planner import Plan, make_plan

# One harness run (bounded by run()), plus set-up and tear-down.
pytestmark = pytest.mark.timeout(SCENARIO_TIMEOUT_S + 60)


def test_rolling_replans_reuse_the_model_and_match_fresh_solves(small_config, tmp_path):
    pairs: list[tuple[Plan, Plan]] = []

    def checking_planner(*args, **kwargs) -> Plan:
        plan = make_plan(*args, **kwargs)
        kwargs.pop("solver")
        pairs.append((plan, make_plan(*args, **kwargs)))  # same inputs, a new model
        return plan

    async def scenario() -> None:
        h = Harness(small_config, tmp_path, planner=checking_planner)
        await h.sim.start()
        try:
            await h.run_until(T0 + timedelta(minutes=50))  # plans at 0, 15, 30, 45 min
        finally:
            await h.io.close()
            await h.sim.stop()
            h.store.engine.dispose()
        counters = h.runtime.counters
        assert counters.plans == len(pairs) >= 4
        assert pairs[0][0].model_reused is False
        assert counters.plans_reusing_model >= 2
        assert counters.plans_reusing_model == sum(p.model_reused for p, _ in pairs)
        for reused, fresh in pairs:
            assert reused.objective_krw == pytest.approx(fresh.objective_krw, rel=1e-4, abs=1)
            assert fresh.model_reused is False
        assert any("model reused" in note for p, _ in pairs for note in p.notes)
        # the data did change between re-plans (the horizon moved with the clock)
        assert len({p.start for p, _ in pairs}) == len(pairs)

    run(scenario)

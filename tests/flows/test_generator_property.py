"""Property: whatever the generator makes, the pipeline's balances equal a plain-Python ledger's."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flows.generate import generate_landing_files
from tests.conftest import Ledger
from tests.reference_ledger import reference_ledger
from transforms.synthetic import GeneratorSpec

SPECS = st.builds(
    GeneratorSpec,
    tenants=st.integers(1, 2),
    customers=st.integers(1, 12),
    months=st.integers(1, 3),
    deltas_per_month=st.integers(1, 150),
    seed=st.integers(0, 2**32 - 1),
    end_month=st.sampled_from(["2026-01", "2026-10", "2027-02"]),
    bad_rows=st.sampled_from([0.0, 0.05]),
    format=st.sampled_from(["csv", "jsonl", "parquet"]),
)


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=SPECS)
def test_generated_ledgers_balance_like_the_reference(
    ledger: Ledger, spec: GeneratorSpec, tmp_path_factory
) -> None:
    run = Ledger(ledger.settings.with_overrides(data_dir=tmp_path_factory.mktemp("property")))
    generate_landing_files(spec, str(run.inbox))
    run.ingest()
    got = {
        (t, e, c, p): Decimal(net)
        for t, e, c, p, net in run.rows(
            "SELECT tenant_id, environment, customer_id, period, net_change FROM customer_periods"
        )
    }
    expected, refused = reference_ledger(run.inbox)
    assert got == expected
    assert run.rows("SELECT count(*) FROM quarantine WHERE line IS NOT NULL") == [(refused,)]
    closing = run.rows(
        "SELECT tenant_id, environment, customer_id, closing_balance "
        "FROM customer_periods QUALIFY period = max(period) OVER "
        "(PARTITION BY tenant_id, environment, customer_id)"
    )
    for tenant, env, customer, balance in closing:
        assert Decimal(balance) == sum(
            v for (t, e, c, _), v in got.items() if (t, e, c) == (tenant, env, customer)
        )


SUMMARIES = (
    "SELECT * EXCLUDE (updated_run_id) FROM customer_periods "
    "ORDER BY tenant_id, environment, customer_id, period"
)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=SPECS, cuts=st.lists(st.floats(0, 1), max_size=3))
def test_summaries_refreshed_run_by_run_equal_summaries_made_at_once(
    ledger: Ledger, spec: GeneratorSpec, cuts: list[float], tmp_path_factory
) -> None:
    # Later files bring late deltas for earlier months: each run refreshes its customers from
    # the earliest month it touched, carrying the balance of the month before in.
    landing = tmp_path_factory.mktemp("landing")
    generate_landing_files(spec, str(landing))
    files = sorted(p.relative_to(landing) for p in landing.rglob("*") if p.is_file())
    at_once = Ledger(ledger.settings.with_overrides(data_dir=tmp_path_factory.mktemp("at-once")))
    by_runs = Ledger(ledger.settings.with_overrides(data_dir=tmp_path_factory.mktemp("by-runs")))
    for name in files:
        at_once.land(str(name), (landing / name).read_bytes())
    at_once.ingest()
    start = 0
    for end in [*sorted(round(c * len(files)) for c in cuts), len(files)]:
        for name in files[start:end]:
            by_runs.land(str(name), (landing / name).read_bytes())
        by_runs.ingest()
        start = max(start, end)
    assert by_runs.rows(SUMMARIES) == at_once.rows(SUMMARIES)

import pytest

from stripe_sync.emulator.knobs import EmulatorConfig, FaultInjector, Latency, SlidingWindowLimiter


def test_the_limiter_accepts_at_most_rate_requests_in_any_one_second_window():
    limiter = SlidingWindowLimiter(3)
    accepted = []
    for now in (0.0, 0.1, 0.2, 0.3, 0.99, 1.0, 1.05, 1.15, 1.25):
        if limiter.has_room(now):
            limiter.take(now)
            accepted.append(now)
    assert accepted == [0.0, 0.1, 0.2, 1.0, 1.15, 1.25]


def test_the_same_seed_draws_the_same_faults():
    config = EmulatorConfig(fault_rate=0.3, seed=11)
    one, two = FaultInjector(config), FaultInjector(config)
    draws = [one.draw() for _ in range(300)]
    assert draws == [two.draw() for _ in range(300)]
    assert any(draws)


def test_faults_strike_at_the_configured_rate():
    injector = FaultInjector(
        EmulatorConfig(fault_rate=0.2, fault_kinds=["500", "503", "drop", "stall"], seed=3)
    )
    faults = [injector.draw() for _ in range(5000)]
    share = sum(f is not None for f in faults) / len(faults)
    assert 0.18 < share < 0.22
    assert {f.kind for f in faults if f} == {"500", "503", "drop", "stall"}


def test_a_429_burst_answers_429_to_the_next_requests_too():
    injector = FaultInjector(
        EmulatorConfig(fault_rate=1.0, fault_kinds=["429_burst"], burst_length=4, seed=1)
    )
    assert [injector.draw().kind for _ in range(4)] == ["429_burst"] * 4


def test_faults_strike_only_the_configured_endpoints():
    injector = FaultInjector(
        EmulatorConfig(fault_rate=1.0, fault_endpoints=["POST /v1/products/{id}"], seed=2)
    )
    assert injector.draw("POST /v1/products") is None
    assert injector.draw("POST /v1/products/{id}") is not None


def test_only_500_503_and_drop_can_strike_after_execution():
    injector = FaultInjector(
        EmulatorConfig(fault_rate=1.0, fault_after_execution_share=1.0, seed=5)
    )
    for _ in range(200):
        fault = injector.draw()
        assert fault.after_execution == (fault.kind in ("500", "503", "drop"))


def test_latency_stays_within_its_jitter():
    latency = Latency(EmulatorConfig(latency_ms=150, latency_jitter_ms=50, seed=1))
    draws = [latency.draw() for _ in range(1000)]
    assert 0.1 <= min(draws) < 0.11 and 0.19 < max(draws) <= 0.2


def test_unknown_settings_and_fault_kinds_are_refused():
    with pytest.raises(ValueError, match="latency"):
        EmulatorConfig().updated({"latency": 5})
    with pytest.raises(ValueError, match="fault kind"):
        EmulatorConfig().updated({"fault_kinds": ["timeout"]})

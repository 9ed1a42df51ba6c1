"""Counting requests per one-second window, as Stripe's rate limit does."""


def max_in_window(times: list[float], window: float = 1.0) -> int:
    """Most of `times` in any half-open window (t - window, t] ending at one of them."""
    times = sorted(times)
    best, first = 0, 0
    for last, t in enumerate(times):
        while times[first] <= t - window:
            first += 1
        best = max(best, last - first + 1)
    return best

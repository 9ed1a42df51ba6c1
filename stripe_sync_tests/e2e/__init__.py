"""End-to-end scenarios: the product at work against real services."""

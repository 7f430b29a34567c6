"""End-to-end harness: local parent + tenant control planes, simulators, scenarios, demo, benchmarks."""

"""Developer tools of the cardless ATM: broker launcher, benchmarks, helpers."""

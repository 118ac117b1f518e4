"""harness: cost-performance benchmarking of ML models (time, memory, energy, dollars, quality)."""

__version__ = "0.1.0"

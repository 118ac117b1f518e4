"""Measurement around the timed window: time (timing), memory (memory), GPU facts via NVML (nvml)."""

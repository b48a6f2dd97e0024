"""Benchmarks of the project: the harnesses that measure it (`python -m benchmarks.bench`, ...) beside
their JSON results. Not part of the device package: they may import `training` and `export`."""

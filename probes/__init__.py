"""Probes that decided something once (probes/README.md): each answered one question, its JSON
beside it. Not part of the product and not installed (the wheel ships runtime, training and
export); the recurring measurements are in benchmarks/."""

"""Benchmarks of ostack against the local control plane (`make bench`)."""

"""Throughput benchmarks against the local vendor sandbox; ``make bench`` runs throughput.py."""

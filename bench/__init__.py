"""Benchmarks (`make bench`): each runs its baseline in the same process and prints ratios."""

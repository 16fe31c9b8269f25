"""Tidings search engine: analyzer, roaring-bitmap postings, Gmail-style queries; a library with no wire."""

"""Tidings client: the generated tidings.v1 stubs (package `tidings`) and an asyncio wrapper."""

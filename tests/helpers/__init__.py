"""Fixtures and helpers the tests share (test modules never import each other)."""

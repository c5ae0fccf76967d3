"""rlhf_edu: small, tested helpers for a notebook-first RLHF course."""

__version__ = "0.1.0"

"""Test helpers that run real programs: an image registry, a no-ptrace launcher."""

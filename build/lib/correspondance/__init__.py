"""Correspondance core: settings, city configuration and the shared state/events store.

Every other package may import this one; it imports none of them.
"""

__version__ = "0.1.0"

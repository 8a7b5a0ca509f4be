"""Alembic environment and versions for tasktrail's read side and operational tables.

Installed as the package ``tasktrail.migrations``; ``tasktrail db upgrade`` runs them.
"""

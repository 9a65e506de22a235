"""Plugin author commands: plugin new (documentation issue)."""

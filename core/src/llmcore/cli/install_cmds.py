"""install / uninstall plugins by short name (packaging issue)."""

"""Model commands: chat, embed, models (completed by the provider issue)."""

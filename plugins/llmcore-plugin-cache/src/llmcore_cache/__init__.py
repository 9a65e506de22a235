"""llmcore response cache plugin."""

"""Agent commands: agents, agent run (completed by the agent issue)."""

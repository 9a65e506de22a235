"""The provider types that ship with the core (today: ``openai``)."""

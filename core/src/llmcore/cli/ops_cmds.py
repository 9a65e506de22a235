"""Operations commands: usage, doctor, install, plugin new (later issues)."""

"""The local executor: tasks, channels, checkpoint coordination and recovery (internal)."""

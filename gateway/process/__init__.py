"""Process entry points: the one CLI, the one Settings, the demo supervisor."""

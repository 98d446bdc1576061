"""Read models: functions taking a session and returning plain values; they never write."""

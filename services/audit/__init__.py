"""The audit API: recorded history, verifiable exports and chain verification."""

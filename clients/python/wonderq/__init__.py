"""WonderQ Python client (placeholder until the client lands)."""

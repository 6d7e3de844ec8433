"""The HTTP adapter: tracking hot path, management API, documentation and error mapping."""

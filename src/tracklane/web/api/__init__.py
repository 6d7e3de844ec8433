"""The management API under `/api/v1`: JSON REST over the services, bearer API keys."""

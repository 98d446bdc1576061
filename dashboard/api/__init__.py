"""The JSON API (/api/...) and its OpenAPI description, and the downloads."""

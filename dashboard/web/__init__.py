"""Web plumbing: the app factory, sign-in, CSRF, CSP, errors, compression, the per-request store session."""

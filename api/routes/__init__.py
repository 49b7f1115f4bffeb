"""flask-smorest blueprints, all under /v1."""

"""HTTP layer: Flask app factory, flask-smorest blueprints, problem+json errors."""

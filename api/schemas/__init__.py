"""marshmallow schemas of the public API (unknown fields are rejected everywhere)."""

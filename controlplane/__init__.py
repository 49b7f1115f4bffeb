"""The Confluencia domain: models, services, tasks, configuration and CLI."""

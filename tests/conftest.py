"""Fixtures shared by every test tier; the Kafka broker lives in its own plugin module."""

pytest_plugins = ["tests.kafka_broker"]

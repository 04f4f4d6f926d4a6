"""The relay (outbox): carries the event store's global order to Kafka, from a checkpoint."""

"""Projection workers on faust-streaming: the Kafka side of the same pure projections."""

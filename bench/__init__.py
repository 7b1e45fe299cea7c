"""`make bench`: throughput and memory figures, each beside a raw Kafka baseline."""

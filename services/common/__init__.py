"""Code shared by the services: settings, logging, Kafka helpers, codecs, and the pure rules
more than one service applies (phones, quiet hours, rendering, deterministic ids)."""

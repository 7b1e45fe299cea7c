"""Runtime glue shared by the services: settings, logging, Kafka helpers, codecs."""

"""The Kafka contract of smsflow: pydantic models of every event and definition.

Pure data: no I/O, and nothing from ``services`` is imported here.
"""

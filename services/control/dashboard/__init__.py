"""The live dashboard: state folded from the topics, served by aiohttp with server-sent events."""

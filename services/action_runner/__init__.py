"""The action runner: consent ledger, marketing status, SMS send gates, rendering, keywords."""

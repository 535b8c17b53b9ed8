"""Salesforce API constants."""

API_VERSION = "59.0"
COLLECTION_LIMIT = 200  # records per sObject Collections request
REQUEST_TIMEOUT = 60.0  # seconds per HTTP request
DAILY_LIMIT_WAIT = 3600.0  # the 24 h allocation is spent: retry much later, never in-process
SOQL_DATETIME = "%Y-%m-%dT%H:%M:%SZ"

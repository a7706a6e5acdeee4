"""DynamoDB store (boto3): transactions in parts, 400 KB quarantine, leases."""

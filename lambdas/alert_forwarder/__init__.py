"""Alert forwarder Lambda: SNS/EventBridge alerts to Slack, Telegram, email, SMS and webhooks.

Entry point: `lambdas.alert_forwarder.handler.handler`. See README.md in this directory.
"""

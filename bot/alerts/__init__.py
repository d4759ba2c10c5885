"""Alerts in: Grafana and Prometheus Alertmanager webhooks declare, attach to and resolve incidents.

`payload` validates bodies (pure), `routing` is the policy from playbook_content/alerts.yaml (pure),
`present` formats alerts for Slack mrkdwn (pure, escaped), `flows` stores and processes notifications,
`web` is the HTTP adapter.
"""

"""The public status page: components and their states, public updates written on purpose, scheduled
maintenance, 90 days of history, subscribers. `model`/`render` are pure; `store` is the SQL side; `web` serves
/status, /status.json and /status/feed.atom; `publish` is the Slack-facing flow."""

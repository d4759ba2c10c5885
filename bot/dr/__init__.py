"""Disaster recovery: backup/restore of the bot's database and the DR plan's data (dr.yaml, dr-plan.md)."""

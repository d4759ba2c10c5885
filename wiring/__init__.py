"""The composition root: the one place that builds Services and plugs the adapters (Slack handlers, the Slack
ChatPort, Block Kit) and the registered kinds (timers, outbox effects, worker ticks) into the domain.

Every entry point goes through `open_services`: serve (wiring.app), the worker, Socket Mode, the CLI
subcommands, the sandbox, the benches and the tests. See docs/architecture.md."""

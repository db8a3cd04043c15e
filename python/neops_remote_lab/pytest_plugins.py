"""The pytest11 entry point `neops-remote-lab`: installing the wheel activates these plugins."""

pytest_plugins: list[str] = [
    "neops_remote_lab.testing.fixture",
    "neops_remote_lab.testing.pytest_order_plugin",
    "neops_remote_lab.testing.pytest_session_plugin",
]

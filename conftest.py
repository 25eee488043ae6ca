"""Repository-wide pytest plugins: the throwaway PostgreSQL server fixtures."""

pytest_plugins = ("verticals.serving.testing", "verticals.dashboard.testing")

"""Lake part (see architecture.md)."""

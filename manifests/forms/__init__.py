"""Forms: what a page or an API write accepts, each error at its field."""

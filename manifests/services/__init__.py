"""Business logic: plain functions named <noun>_<verb>, keyword-only arguments."""

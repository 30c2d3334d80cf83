"""The dashboard's pages, one module per concern; routes in manifests/urls.py."""

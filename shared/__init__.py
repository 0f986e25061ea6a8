"""Shiplight's domain package, shipped to Lambda as one layer (``SharedLayer``).

Layers, imported one way only (enforced by import-linter, see pyproject.toml):
``logic`` -> ``adapters`` | ``dal`` -> ``models`` -> the core modules beside them
(``clock``, ``errors``, ``settings``, ``observability``, ``signatures``, ``sources``,
``envelope``, ``http``). The core and ``dal`` modules used by the webhook receiver
import only the standard library and botocore, to keep its cold start small.
"""

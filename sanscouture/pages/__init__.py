"""The broker's French pages: Jinja2 templates, their stylesheet and the functions that render them.

Import :mod:`sanscouture.pages.render`; nothing here imports Jinja2 until a page is rendered, so code
paths that never show a page (``/token``, ``/jwks``, the stylesheet) keep a short cold start.
"""

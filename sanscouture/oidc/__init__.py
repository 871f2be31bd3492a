"""The relying-party-facing protocol: one module per endpoint, one small check per rule.

Each ``check_*`` function enforces one rule and raises one typed error from
:mod:`sanscouture.errors`; each endpoint module reads as a straight list of these calls
(node-oidc-provider's grant shape). Nothing here does I/O except through the ports.
"""
